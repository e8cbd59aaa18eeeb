#!/usr/bin/env python3
"""A small AoE initiator on an AF_PACKET socket, for integration tests.

Subcommands:
  fuzz IFACE SHELF SLOT COUNT SEED   send COUNT malformed/random AoE frames
  write IFACE SHELF SLOT LBA HEXBYTE write 2 sectors of one byte value
  read IFACE SHELF SLOT LBA COUNT    read sectors, print their md5
  listen IFACE SECS                  print "shelf.slot" of each broadcast
                                     Query Config response heard
  config IFACE SHELF SLOT            print "bufcnt=.. sectors=.. fw=.."
  fill IFACE SHELF SLOT LBA N        N sequential 2-sector writes; print
                                     "ok=.. ata_errors=.. no_answer=.."
  status IFACE SHELF SLOT CMD LBA N  print "aoe_error ata_status ata_err" for
                                     an ATA command (no data sent)
  vlan-identify IFACE SHELF SLOT VID  IDENTIFY in an 802.1Q-tagged frame;
                                     print the reply's VLAN id and model
  reserve IFACE SHELF SLOT RCMD [MAC...] / mask IFACE SHELF SLOT MCMD [DCMD:MAC...]
                                     print the reply's error and list

Exit status 1 when no answer arrives within the timeout.
"""
import hashlib
import os
import random
import socket
import struct
import sys
import time

ETH_P_AOE = 0x88A2


def open_sock(iface, proto=ETH_P_AOE):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((iface, 0))
    s.settimeout(0.2)
    return s


def mac_of(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def frame(src, shelf, slot, cmd, tag, arg, dst=b"\xff" * 6):
    f = dst + src + struct.pack(">HBBHBBI", ETH_P_AOE, 0x10, 0, shelf, slot, cmd, tag) + arg
    return f + b"\0" * max(0, 60 - len(f))


def ata(aflags, cmd, count, lba, data=b""):
    return struct.pack("<BBBB", aflags, 0, count, cmd) + lba.to_bytes(6, "little") + b"\0\0" + data


def exchange(s, f, tag, timeout=2.0):
    """Send f, return the response with our tag (retransmitting once)."""
    deadline = time.time() + timeout
    s.send(f)
    sent_again = False
    while time.time() < deadline:
        try:
            r = s.recv(9000)
        except socket.timeout:
            if not sent_again and time.time() > deadline - timeout / 2:
                s.send(f)
                sent_again = True
            continue
        if len(r) >= 24 and r[14] & 0x08 and struct.unpack(">I", r[20:24])[0] == tag:
            return r
    return None


def cmd_fuzz(iface, shelf, slot, count, seed):
    rng = random.Random(int(seed))
    s = open_sock(iface)
    src = mac_of(iface)
    for i in range(int(count)):
        kind = rng.randrange(6)
        if kind == 0:  # truncated headers
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
            f = b"\xff" * 6 + src + struct.pack(">H", ETH_P_AOE) + body
        elif kind == 1:  # random everything after the EtherType
            n = rng.randrange(0, 1500)
            f = b"\xff" * 6 + src + struct.pack(">H", ETH_P_AOE) + os.urandom(n)
        else:  # well-formed header, random command and argument
            # No Mac Mask List edits: a random mask would lock the test
            # host out (the protocol tests cover mask edits).
            cmd = rng.choice([0, 1, 3, rng.randrange(4, 256)])
            arg = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 1100)))
            f = frame(src, int(shelf), int(slot), cmd, rng.randrange(1 << 32), arg)
            if rng.randrange(4) == 0:  # wrong version / response flag
                f = f[:14] + bytes([rng.randrange(256)]) + f[15:]
        s.send(f[:1514])
    # Drain what came back; the point is that the target survives.
    try:
        while True:
            s.recv(9000)
    except socket.timeout:
        pass


def cmd_write(iface, shelf, slot, lba, byte):
    s = open_sock(iface)
    data = bytes([int(byte, 16)]) * 1024
    tag = 0x80000000 | random.randrange(1 << 30)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 0, tag,
                          ata(0x41, 0x34, 2, int(lba), data)), tag)
    if r is None:
        sys.exit(1)
    print(f"{r[15] if r[14] & 4 else 0} {r[27]:#x} {r[25]:#x}")


def cmd_fill(iface, shelf, slot, lba, n):
    s = open_sock(iface)
    src = mac_of(iface)
    counts = {"ok": 0, "ata_errors": 0, "aoe_errors": 0, "no_answer": 0}
    for i in range(int(n)):
        tag = 0x80000000 | i
        data = struct.pack("<Q", int(lba) + 2 * i) * 128
        r = exchange(s, frame(src, int(shelf), int(slot), 0, tag,
                              ata(0x41, 0x34, 2, int(lba) + 2 * i, data)), tag)
        if r is None:
            counts["no_answer"] += 1
        elif r[14] & 4:
            counts["aoe_errors"] += 1
        elif r[27] & 1:
            counts["ata_errors"] += 1
        else:
            counts["ok"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


def cmd_listen(iface, secs):
    s = open_sock(iface)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            r = s.recv(9000)
        except socket.timeout:
            continue
        if r[:6] == b"\xff" * 6 and len(r) >= 32 and r[14] & 0x08 and r[19] == 1:
            print(f"{struct.unpack('>H', r[16:18])[0]}.{r[18]}", flush=True)


def cmd_config(iface, shelf, slot):
    s = open_sock(iface)
    tag = 0x80000000 | random.randrange(1 << 30)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 1, tag, b"\0" * 8), tag)
    if r is None:
        sys.exit(1)
    bufcnt, fw, scnt = struct.unpack(">HHB", r[24:29])
    print(f"bufcnt={bufcnt} sectors={scnt} fw={fw} len={len(r)}")


def cmd_read(iface, shelf, slot, lba, count):
    s = open_sock(iface)
    tag = 0x80000000 | random.randrange(1 << 30)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 0, tag,
                          ata(0x40, 0x24, int(count), int(lba))), tag)
    if r is None:
        sys.exit(1)
    print(hashlib.md5(r[36:36 + 512 * int(count)]).hexdigest(), len(r))


def cmd_status(iface, shelf, slot, cmd, lba, count):
    s = open_sock(iface)
    tag = 0x80000000 | random.randrange(1 << 30)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 0, tag,
                          ata(0x40, int(cmd, 0), int(count), int(lba))), tag)
    if r is None:
        sys.exit(1)
    print(f"{r[15] if r[14] & 4 else 0} {r[27]:#x} {r[25]:#x} {len(r)}")


def cmd_reserve(iface, shelf, slot, rcmd, *macs):
    s = open_sock(iface)
    tag = 0x80000000 | random.randrange(1 << 30)
    arg = bytes([int(rcmd), len(macs)]) + b"".join(bytes.fromhex(m.replace(":", "")) for m in macs)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 3, tag, arg), tag)
    if r is None:
        sys.exit(1)
    n = r[25]
    print(r[15] if r[14] & 4 else 0, " ".join(r[26 + 6 * i:32 + 6 * i].hex(":") for i in range(n)))


def cmd_mask(iface, shelf, slot, mcmd, *dirs):
    s = open_sock(iface)
    tag = 0x80000000 | random.randrange(1 << 30)
    arg = bytes([0, int(mcmd), 0, len(dirs)])
    for d in dirs:
        dcmd, mac = d.split(":", 1)
        arg += bytes([0, int(dcmd)]) + bytes.fromhex(mac.replace(":", ""))
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), 2, tag, arg), tag)
    if r is None:
        sys.exit(1)
    n = r[27]
    print(r[26], " ".join(r[28 + 8 * i + 2:28 + 8 * i + 8].hex(":") for i in range(n)))


def cmd_vlan_identify(iface, shelf, slot, vid):
    # The kernel strips the tag on receive and reports it in PACKET_AUXDATA,
    # to ETH_P_ALL sockets only (it clears it before protocol handlers).
    SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
    ETH_P_ALL = 0x0003
    s = open_sock(iface, ETH_P_ALL)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    tag = 0x80000000 | random.randrange(1 << 30)
    f = frame(mac_of(iface), int(shelf), int(slot), 0, tag, ata(0, 0xEC, 1, 0))
    f = f[:12] + struct.pack(">HH", 0x8100, int(vid)) + f[12:]
    s.send(f)
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            r, anc, _, _ = s.recvmsg(9000, socket.CMSG_SPACE(20))
        except socket.timeout:
            continue
        if len(r) < 24 or r[12:14] != b"\x88\xa2" or not r[14] & 0x08 or struct.unpack(">I", r[20:24])[0] != tag:
            continue
        vlan = None
        for level, typ, data in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack("IIIHHH", data[:18])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0x0FFF
        words = r[36:36 + 512]
        model = b"".join(words[2 * w:2 * w + 2][::-1] for w in range(27, 47)).decode().strip()
        print(vlan, model)
        return
    sys.exit(1)


if __name__ == "__main__":
    cmds = {"fuzz": cmd_fuzz, "write": cmd_write, "read": cmd_read, "status": cmd_status,
            "reserve": cmd_reserve, "mask": cmd_mask, "vlan-identify": cmd_vlan_identify, "fill": cmd_fill, "listen": cmd_listen,
            "config": cmd_config}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
