//! A raw AF_PACKET socket bound to one interface and the AoE EtherType, with
//! batched `sendmmsg`/`recvmmsg` and an optional fanout group that steers
//! each reply to the sender thread named in its tag.
//!
//! socket2 creates the socket (nix cannot name the AoE protocol); nix does
//! the rest. The socket options nix lacks are declared with its
//! `sockopt_impl!` (whose expansion holds nix's own `setsockopt` call), so
//! the crate has no unsafe code of its own (main.rs forbids it).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use aoe_proto::wire::{ARG_OFFSET, ETHERTYPE_AOE};
use aoe_proto::MacAddr;
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, LinkAddr, MsgFlags, MultiHeaders};
use nix::sys::time::TimeVal;
// The macro calls itself and setsockopt_impl! by their bare names.
use nix::{setsockopt_impl, sockopt_impl};
use socket2::{Domain, Protocol, Socket, Type};

/// The most frames one `sendmmsg`/`recvmmsg` call moves.
pub const MAX_BATCH: usize = 64;

/// Socket buffer size asked for: a burst of replies must not be dropped.
const SOCKET_BUFFER: usize = 8 << 20;

sockopt_impl!(
    /// PACKET_QDISC_BYPASS: send straight to the driver.
    QdiscBypass,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_QDISC_BYPASS,
    libc::c_int
);
sockopt_impl!(
    /// PACKET_FANOUT: join a fanout group (id | mode << 16).
    Fanout,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_FANOUT,
    libc::c_int
);
sockopt_impl!(
    /// PACKET_FANOUT_DATA: the classic BPF program of a PACKET_FANOUT_CBPF
    /// group.
    FanoutData,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_FANOUT_DATA,
    libc::sock_fprog
);

/// What the kernel says about an interface.
#[derive(Debug, Clone, Copy)]
pub struct IfaceInfo {
    /// Its link-layer address (ifindex and MAC), to bind sockets to.
    link: LinkAddr,
    pub mac: MacAddr,
    pub mtu: usize,
}

/// Looks up the link-layer address and MTU of `name` in this network
/// namespace.
pub fn iface_info(name: &str) -> Result<IfaceInfo, String> {
    let link = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("listing interfaces: {e}"))?
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address?.as_link_addr().copied())
        .ok_or_else(|| format!("no network interface named {name:?} here (see `ip link`)"))?;
    let mac = MacAddr(link.addr().ok_or("interface has no link-layer address")?);
    // The MTU has no safe call; sysfs has it. A sysfs mounted for another
    // network namespace (nsenter without a remount) would describe another
    // interface: the address and index must match what netlink said.
    let sys = |f: &str| {
        let path = format!("/sys/class/net/{name}/{f}");
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{path}: {e}"))
    };
    if sys("address")? != mac.to_string() || sys("ifindex")? != link.ifindex().to_string() {
        return Err(format!(
            "/sys/class/net/{name} describes another network namespace's interface \
             (enter the namespace with `ip netns exec`, which mounts its sysfs)"
        ));
    }
    let mtu = sys("mtu")?
        .parse()
        .map_err(|e| format!("MTU of {name}: {e}"))?;
    Ok(IfaceInfo { link, mac, mtu })
}

/// An AF_PACKET SOCK_RAW socket that sends and receives whole Ethernet
/// frames of EtherType 0x88A2 on one interface.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens and binds the socket; blocking receives wait at most
    /// `recv_timeout`.
    pub fn open(ifi: &IfaceInfo, recv_timeout: Duration) -> io::Result<Self> {
        let proto = Protocol::from(i32::from(ETHERTYPE_AOE.to_be()));
        let fd = OwnedFd::from(Socket::new(Domain::PACKET, Type::RAW, Some(proto))?);
        // Protocol 0 in the address keeps the socket's.
        debug_assert_eq!(ifi.link.protocol(), 0);
        socket::bind(fd.as_raw_fd(), &ifi.link)?;
        // The FORCE variants need CAP_NET_ADMIN; else take what the limits
        // allow.
        if socket::setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            socket::setsockopt(&fd, sockopt::RcvBuf, &SOCKET_BUFFER)?;
        }
        if socket::setsockopt(&fd, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            socket::setsockopt(&fd, sockopt::SndBuf, &SOCKET_BUFFER)?;
        }
        let tv = TimeVal::new(
            recv_timeout.as_secs() as _,
            recv_timeout.subsec_micros() as _,
        );
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
        Ok(Self { fd })
    }

    /// Sends straight to the driver, skipping the qdisc layer.
    pub fn set_qdisc_bypass(&self) -> io::Result<()> {
        Ok(socket::setsockopt(&self.fd, QdiscBypass, &1)?)
    }

    /// Joins fanout group `id` in classic-BPF mode. Members are numbered in
    /// join order; call [`Self::set_fanout_tag_steering`] on one member.
    pub fn join_fanout(&self, id: u16) -> io::Result<()> {
        let arg = libc::c_int::from(id) | (libc::PACKET_FANOUT_CBPF as libc::c_int) << 16;
        Ok(socket::setsockopt(&self.fd, Fanout, &arg)?)
    }

    /// Installs the group's demux program: member = (tag byte 0 & 0x7f),
    /// i.e. tag bits 30..24, read relative to the MAC header so it does not
    /// depend on where skb->data points. The kernel takes it modulo the
    /// member count. (Untagged frames: replies to untagged requests.)
    pub fn set_fanout_tag_steering(&self) -> io::Result<()> {
        const SKF_LL_OFF: u32 = (-0x20_0000i32) as u32;
        // The tag is the u32 just before the command argument.
        const TAG_OFFSET: u32 = (ARG_OFFSET - std::mem::size_of::<u32>()) as u32;
        let insn = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let mut prog = [
            insn(
                libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
                SKF_LL_OFF + TAG_OFFSET,
            ),
            insn(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0x7f),
            insn(libc::BPF_RET | libc::BPF_A, 0),
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        Ok(socket::setsockopt(&self.fd, FanoutData, &fprog)?)
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty())?;
        Ok(())
    }

    /// Receives one frame, waiting up to the receive timeout; `None` if
    /// none came.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => Ok(Some(n)),
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// No destination address: the socket is bound.
const NO_ADDRS: [Option<()>; MAX_BATCH] = [None; MAX_BATCH];

/// Reusable `sendmmsg` headers, allocated once.
pub struct TxBatch {
    hdrs: MultiHeaders<()>,
}

impl TxBatch {
    pub fn new() -> Self {
        Self {
            hdrs: MultiHeaders::preallocate(MAX_BATCH, None),
        }
    }

    /// Sends the frames in `frames` (at most [`MAX_BATCH`]); returns how
    /// many the kernel took. Retries partial sends; a hard error after some
    /// frames went out returns the count so far, before any, the error.
    pub fn send<'a>(
        &mut self,
        sock: &PacketSocket,
        frames: impl Iterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        let mut iovs: [[IoSlice<'a>; 1]; MAX_BATCH] = [[IoSlice::new(&[])]; MAX_BATCH];
        let mut n = 0;
        for (iov, f) in iovs.iter_mut().zip(frames) {
            *iov = [IoSlice::new(f)];
            n += 1;
        }
        let mut done = 0;
        while done < n {
            let r = socket::sendmmsg(
                sock.fd.as_raw_fd(),
                &mut self.hdrs,
                &iovs[done..n],
                NO_ADDRS,
                [],
                MsgFlags::empty(),
            );
            match r {
                Ok(sent) => done += sent.count(),
                Err(Errno::EINTR) => {}
                Err(_) if done > 0 => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}

/// Reusable `recvmmsg` state: [`MAX_BATCH`] frame buffers of `frame_len`
/// bytes.
pub struct RxBatch {
    bufs: Vec<u8>,
    frame_len: usize,
    hdrs: MultiHeaders<()>,
    lens: [usize; MAX_BATCH],
}

impl RxBatch {
    pub fn new(frame_len: usize) -> Self {
        Self {
            bufs: vec![0; MAX_BATCH * frame_len],
            frame_len,
            hdrs: MultiHeaders::preallocate(MAX_BATCH, None),
            lens: [0; MAX_BATCH],
        }
    }

    /// Receives up to `max` frames (at least one, at most [`MAX_BATCH`]).
    /// With `wait`, blocks (up to the socket's receive timeout) for the
    /// first one. Returns how many arrived; 0 on timeout.
    pub fn recv(&mut self, sock: &PacketSocket, wait: bool, max: usize) -> io::Result<usize> {
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let n = max.clamp(1, MAX_BATCH);
        let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
        for (iov, buf) in iovs
            .iter_mut()
            .zip(self.bufs.chunks_exact_mut(self.frame_len).take(n))
        {
            *iov = [IoSliceMut::new(buf)];
        }
        match socket::recvmmsg(
            sock.fd.as_raw_fd(),
            &mut self.hdrs,
            &mut iovs[..n],
            flags,
            None,
        ) {
            Ok(msgs) => {
                let mut n = 0;
                for (len, m) in self.lens.iter_mut().zip(msgs) {
                    *len = m.bytes;
                    n += 1;
                }
                Ok(n)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Frame `i` of the last `recv` (clipped to the buffer if truncated).
    pub fn frame(&self, i: usize) -> &[u8] {
        let start = i * self.frame_len;
        &self.bufs[start..start + self.lens[i].min(self.frame_len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_offset_is_the_tags_first_byte() {
        // The fanout program reads the tag's first byte.
        assert_eq!(ARG_OFFSET - 4, 20);
        let mut buf = [0u8; 64];
        crate::frames::put_headers(
            &mut buf,
            MacAddr::BROADCAST,
            MacAddr::BROADCAST,
            1,
            1,
            aoe_proto::wire::Command::Ata,
        );
        crate::frames::set_tag(&mut buf, 0x8512_3456);
        assert_eq!(buf[20] & 0x7f, 5);
    }
}
