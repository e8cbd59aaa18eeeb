//! A raw AF_PACKET socket bound to one interface and the AoE EtherType, with
//! batched `sendmmsg`/`recvmmsg` and an optional fanout group that steers
//! each reply to the sender thread named in its tag.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use aoe_proto::wire::{MacAddr, ETHERTYPE_AOE};

/// What the kernel says about an interface.
#[derive(Debug, Clone, Copy)]
pub struct IfaceInfo {
    pub ifindex: i32,
    pub mac: MacAddr,
    pub mtu: usize,
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct (a name array and a union of plain
    // data); all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Looks up ifindex, MAC address and MTU of `name`.
pub fn iface_info(name: &str) -> io::Result<IfaceInfo> {
    // SAFETY: plain socket(2) call; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = ifreq_for(name)?;
    // SAFETY: SIOCGIFINDEX reads the name and writes ifru_ifindex of the
    // ifreq we own; fd is valid.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name}: {e}")));
    }
    // SAFETY: the ioctl above filled the ifindex member of the union.
    let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };
    // SAFETY: as above, for SIOCGIFHWADDR (writes ifru_hwaddr).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    // SAFETY: as above, for SIOCGIFMTU (writes ifru_mtu).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the mtu member of the union.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu } as usize;
    Ok(IfaceInfo { ifindex, mac, mtu })
}

/// An AF_PACKET SOCK_RAW socket that sends and receives whole Ethernet
/// frames of EtherType 0x88A2 on one interface.
pub struct PacketSocket {
    fd: OwnedFd,
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the size we pass; the kernel only
    // reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    pub fn open(ifindex: i32) -> io::Result<Self> {
        let proto = ETHERTYPE_AOE.to_be() as i32;
        // SAFETY: plain socket(2) call; the result is checked below.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETHERTYPE_AOE.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll and we pass its exact size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Self { fd };
        // Big buffers so a burst of replies is not dropped; FORCE needs
        // CAP_NET_ADMIN, fall back to the capped variant.
        let sz: i32 = 8 << 20;
        if setsockopt(s.raw(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &sz).is_err() {
            let _ = setsockopt(s.raw(), libc::SOL_SOCKET, libc::SO_RCVBUF, &sz);
        }
        if setsockopt(s.raw(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sz).is_err() {
            let _ = setsockopt(s.raw(), libc::SOL_SOCKET, libc::SO_SNDBUF, &sz);
        }
        Ok(s)
    }

    fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Sends straight to the driver, skipping the qdisc layer.
    pub fn set_qdisc_bypass(&self) -> io::Result<()> {
        setsockopt(
            self.raw(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &1i32,
        )
    }

    /// How long a blocking receive waits before returning EAGAIN.
    pub fn set_recv_timeout(&self, d: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(self.raw(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// Joins fanout group `id` in classic-BPF mode. Members are numbered in
    /// join order; call [`Self::set_fanout_tag_steering`] on one member.
    pub fn join_fanout(&self, id: u16) -> io::Result<()> {
        let arg: i32 = (id as i32) | ((libc::PACKET_FANOUT_CBPF as i32) << 16);
        setsockopt(self.raw(), libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
    }

    /// Installs the group's demux program: member = (tag byte 0 & 0x7f),
    /// i.e. tag bits 30..24, read relative to the MAC header so it does not
    /// depend on where skb->data points. The kernel takes it modulo the
    /// member count.
    pub fn set_fanout_tag_steering(&self) -> io::Result<()> {
        const SKF_LL_OFF: u32 = (-0x200000i32) as u32;
        let mut prog = [
            // ldb [SKF_LL_OFF + 20]
            libc::sock_filter {
                code: (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: SKF_LL_OFF.wrapping_add(20),
            },
            // and #0x7f
            libc::sock_filter {
                code: (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: 0x7f,
            },
            // ret a
            libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_A) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        setsockopt(
            self.raw(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT_DATA,
            &fprog,
        )
    }

    /// Waits up to `timeout` for a frame to be readable.
    pub fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let r = unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a valid readable buffer of frame.len() bytes.
        let r = unsafe { libc::send(self.raw(), frame.as_ptr().cast(), frame.len(), 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one frame without blocking; `None` if nothing is queued.
    pub fn recv_nowait(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let r = unsafe {
            libc::recv(
                self.raw(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(r as usize))
    }
}

/// Reusable `sendmmsg` state: iovecs and headers allocated once.
pub struct TxBatch {
    iov: Vec<libc::iovec>,
    hdr: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside are only scratch space filled and used
// within one `send` call on the owning thread.
unsafe impl Send for TxBatch {}

impl TxBatch {
    pub fn new(cap: usize) -> Self {
        let iov = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            cap
        ];
        // SAFETY: mmsghdr is plain data; all-zero (null pointers, zero
        // lengths) is a valid value.
        let hdr = (0..cap).map(|_| unsafe { mem::zeroed() }).collect();
        Self { iov, hdr }
    }

    pub fn capacity(&self) -> usize {
        self.iov.len()
    }

    /// Sends the frames in `frames` (at most `capacity()`); returns how
    /// many the kernel took. Retries partial sends; a hard error after some
    /// frames went out returns the count so far, before any, the error.
    pub fn send<'a>(
        &mut self,
        sock: &PacketSocket,
        frames: impl Iterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        let mut n = 0;
        for f in frames.take(self.iov.len()) {
            self.iov[n] = libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            };
            n += 1;
        }
        for i in 0..n {
            let h = &mut self.hdr[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: hdr[done..n] are initialised above and point at iovecs
            // that point at the caller's frames, all alive for this call.
            let r = unsafe {
                libc::sendmmsg(
                    sock.raw(),
                    self.hdr[done..].as_mut_ptr(),
                    (n - done) as u32,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if done > 0 {
                    return Ok(done);
                }
                return Err(e);
            }
            done += r as usize;
        }
        Ok(done)
    }
}

/// Reusable `recvmmsg` state: `cap` frame buffers of `frame_len` bytes.
pub struct RxBatch {
    bufs: Vec<u8>,
    frame_len: usize,
    iov: Vec<libc::iovec>,
    hdr: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers point into `bufs`, which this struct owns and
// never reallocates; the struct is used by one thread at a time.
unsafe impl Send for RxBatch {}

impl RxBatch {
    pub fn new(cap: usize, frame_len: usize) -> Self {
        let mut bufs = vec![0u8; cap * frame_len];
        let base = bufs.as_mut_ptr();
        let mut iov: Vec<libc::iovec> = (0..cap)
            .map(|i| libc::iovec {
                // SAFETY: i * frame_len < cap * frame_len, inside `bufs`.
                iov_base: unsafe { base.add(i * frame_len) }.cast(),
                iov_len: frame_len,
            })
            .collect();
        let iov_base = iov.as_mut_ptr();
        let hdr = (0..cap)
            .map(|i| {
                // SAFETY: mmsghdr is plain data; all-zero is valid.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                // SAFETY: i < cap = iov.len().
                h.msg_hdr.msg_iov = unsafe { iov_base.add(i) };
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Self {
            bufs,
            frame_len,
            iov,
            hdr,
        }
    }

    /// Receives up to `capacity` frames. With `wait`, blocks (up to the
    /// socket's receive timeout) for the first one. Returns how many
    /// arrived; 0 on timeout.
    pub fn recv(&mut self, sock: &PacketSocket, wait: bool) -> io::Result<usize> {
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        debug_assert_eq!(self.iov.len(), self.hdr.len());
        // SAFETY: every header points at its own iovec, which points at its
        // own frame_len-byte region of `bufs`; all owned by self.
        let r = unsafe {
            libc::recvmmsg(
                sock.raw(),
                self.hdr.as_mut_ptr(),
                self.hdr.len() as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize)
    }

    /// Frame `i` of the last `recv` (clipped to the buffer if truncated).
    pub fn frame(&self, i: usize) -> &[u8] {
        let len = (self.hdr[i].msg_len as usize).min(self.frame_len);
        &self.bufs[i * self.frame_len..i * self.frame_len + len]
    }
}
