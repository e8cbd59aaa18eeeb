#!/usr/bin/env python3
"""A small AoE initiator on an AF_PACKET socket, for integration tests.

Subcommands:
  fuzz IFACE SHELF SLOT COUNT SEED   send COUNT malformed/random AoE frames
  write IFACE SHELF SLOT LBA HEXBYTE write 2 sectors of one byte value
  read IFACE SHELF SLOT LBA COUNT    read sectors, print their md5
  listen IFACE SECS [COUNT]          print "listening" once the socket is
                                     bound, then "shelf.slot" of each broadcast
                                     Query Config response heard, for SECS
                                     seconds or until COUNT were heard
  config IFACE SHELF SLOT            print "bufcnt=.. sectors=.. fw=.."
  qc IFACE SHELF SLOT CCMD [STRING]  Query Config with CCmd (0 read, 1 test,
                                     2 prefix, 3 set, 4 force set); print
                                     "aoe_error config_string"
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

# --- Frame layout (offsets from the start of the Ethernet frame) ------------
# Every offset and length used below is defined here, once.

# Ethernet
ETH_ALEN = 6                      # one MAC address
ETH_DST_OFFSET = 0
ETH_SRC_OFFSET = ETH_DST_OFFSET + ETH_ALEN                    # 6
ETH_TYPE_OFFSET = ETH_SRC_OFFSET + ETH_ALEN                   # 12
ETH_TYPE_LEN = 2
ETH_HEADER_LEN = ETH_TYPE_OFFSET + ETH_TYPE_LEN               # 14
ETH_MIN_FRAME_LEN = 60            # without the FCS: shorter frames are padded
ETH_MAX_FRAME_LEN = 1514          # MTU 1500 + the Ethernet header
RECV_BUF_LEN = 9000               # enough for any reply, jumbo frames included
BROADCAST_MAC = b"\xff" * ETH_ALEN
ETH_P_AOE = 0x88A2
ETH_P_8021Q = 0x8100
ETH_P_ALL = 0x0003
VLAN_TAG_LEN = 4                  # TPID + TCI, inserted before the EtherType
VLAN_VID_MASK = 0x0FFF

# AoE header: version/flags, error, major, minor, command, tag
AOE_HEADER_FORMAT = ">BBHBBI"
AOE_HEADER_LEN = 10
assert struct.calcsize(AOE_HEADER_FORMAT) == AOE_HEADER_LEN
AOE_VERFLAGS_OFFSET = ETH_HEADER_LEN                           # 14
AOE_ERROR_OFFSET = AOE_VERFLAGS_OFFSET + 1                     # 15
AOE_MAJOR_OFFSET = AOE_ERROR_OFFSET + 1                        # 16
AOE_MAJOR_LEN = 2
AOE_MINOR_OFFSET = AOE_MAJOR_OFFSET + AOE_MAJOR_LEN            # 18
AOE_CMD_OFFSET = AOE_MINOR_OFFSET + 1                          # 19
AOE_TAG_OFFSET = AOE_CMD_OFFSET + 1                            # 20
AOE_TAG_LEN = 4
AOE_ARG_OFFSET = ETH_HEADER_LEN + AOE_HEADER_LEN               # 24
assert AOE_ARG_OFFSET == AOE_TAG_OFFSET + AOE_TAG_LEN
AOE_VERSION_BYTE = 0x10           # version 1 in the high nibble, no flags
AOE_FLAG_RESPONSE = 0x08
AOE_FLAG_ERROR = 0x04
AOE_CMD_ATA = 0
AOE_CMD_QUERY_CONFIG = 1
AOE_CMD_MAC_MASK = 2
AOE_CMD_RESERVE = 3
AOE_FIRST_VENDOR_CMD = 4          # fuzzing: commands 4-255
TAG_USERLAND = 0x80000000         # tag bit 31: a userland tool, not the kernel
TAG_RANDOM_BITS = 30

# ATA argument (command 0)
ATA_ARG_FORMAT = "<BBBB"          # aflags, err/feature, sector count, cmd/status
ATA_ARG_LEN = 12
ATA_AFLAGS_OFFSET = AOE_ARG_OFFSET                             # 24
ATA_ERR_OFFSET = ATA_AFLAGS_OFFSET + 1                         # 25
ATA_COUNT_OFFSET = ATA_ERR_OFFSET + 1                          # 26
ATA_STATUS_OFFSET = ATA_COUNT_OFFSET + 1                       # 27
ATA_LBA_OFFSET = ATA_STATUS_OFFSET + 1                         # 28
ATA_LBA_LEN = 6
ATA_RESERVED_LEN = 2
ATA_DATA_OFFSET = AOE_ARG_OFFSET + ATA_ARG_LEN                 # 36
assert ATA_DATA_OFFSET == ATA_LBA_OFFSET + ATA_LBA_LEN + ATA_RESERVED_LEN
SECTOR_SIZE = 512
ATA_AFLAG_LBA48 = 0x40
ATA_AFLAG_WRITE = 0x01
ATA_READ_SECTORS_EXT = 0x24
ATA_WRITE_SECTORS_EXT = 0x34
ATA_IDENTIFY = 0xEC
ATA_STATUS_ERR = 0x01
WRITE_SECTORS = 2                 # write and fill: 2 sectors, one MTU-1500 frame
IDENTIFY_WORD_LEN = 2             # IDENTIFY data: 256 little-endian words
IDENTIFY_MODEL_WORDS = (27, 47)   # model string: words 27-46, byte-swapped

# Query Config argument (command 1)
QC_BUFCNT_OFFSET = AOE_ARG_OFFSET                              # 24
QC_FW_OFFSET = QC_BUFCNT_OFFSET + 2                            # 26
QC_SECTORS_OFFSET = QC_FW_OFFSET + 2                           # 28
QC_REPLY_FORMAT = ">HHB"          # buffer count, firmware version, sector count
QC_REPLY_LEN = QC_SECTORS_OFFSET + 1 - QC_BUFCNT_OFFSET
assert struct.calcsize(QC_REPLY_FORMAT) == QC_REPLY_LEN
QC_VER_CCMD_OFFSET = QC_SECTORS_OFFSET + 1                     # 29
QC_LEN_OFFSET = QC_VER_CCMD_OFFSET + 1                         # 30
QC_LEN_LEN = 2
QC_STRING_OFFSET = QC_LEN_OFFSET + QC_LEN_LEN                  # 32
QC_ARG_LEN = QC_STRING_OFFSET - AOE_ARG_OFFSET                 # 8

# Mac Mask List argument (command 2)
MASK_MCMD_OFFSET = AOE_ARG_OFFSET + 1                          # 25
MASK_MERROR_OFFSET = MASK_MCMD_OFFSET + 1                      # 26
MASK_COUNT_OFFSET = MASK_MERROR_OFFSET + 1                     # 27
MASK_DIRECTIVES_OFFSET = MASK_COUNT_OFFSET + 1                 # 28
MASK_DIRECTIVE_LEN = 8            # reserved, DCmd, MAC
MASK_DIRECTIVE_MAC_OFFSET = 2     # within a directive

# Reserve/Release argument (command 3)
RES_RCMD_OFFSET = AOE_ARG_OFFSET                               # 24
RES_NMACS_OFFSET = RES_RCMD_OFFSET + 1                         # 25
RES_MACS_OFFSET = RES_NMACS_OFFSET + 1                         # 26

# Fuzzing
FUZZ_MAX_TRUNCATED = 12           # header bytes after the EtherType, < a header
FUZZ_MAX_ARG = 1100               # random argument length


def open_sock(iface, proto=ETH_P_AOE):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((iface, 0))
    s.settimeout(0.2)
    return s


def mac_of(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def new_tag():
    return TAG_USERLAND | random.randrange(1 << TAG_RANDOM_BITS)


def frame(src, shelf, slot, cmd, tag, arg, dst=BROADCAST_MAC):
    f = (dst + src + struct.pack(">H", ETH_P_AOE)
         + struct.pack(AOE_HEADER_FORMAT, AOE_VERSION_BYTE, 0, shelf, slot, cmd, tag) + arg)
    return f + b"\0" * max(0, ETH_MIN_FRAME_LEN - len(f))


def ata(aflags, cmd, count, lba, data=b""):
    return (struct.pack(ATA_ARG_FORMAT, aflags, 0, count, cmd)
            + lba.to_bytes(ATA_LBA_LEN, "little") + b"\0" * ATA_RESERVED_LEN + data)


def tag_of(r):
    return struct.unpack(">I", r[AOE_TAG_OFFSET:AOE_TAG_OFFSET + AOE_TAG_LEN])[0]


def is_response(r):
    return len(r) >= AOE_ARG_OFFSET and r[AOE_VERFLAGS_OFFSET] & AOE_FLAG_RESPONSE


def aoe_error(r):
    """The reply's AoE error code, 0 without the error flag."""
    return r[AOE_ERROR_OFFSET] if r[AOE_VERFLAGS_OFFSET] & AOE_FLAG_ERROR else 0


def exchange(s, f, tag, timeout=2.0):
    """Send f, return the response with our tag (retransmitting once)."""
    deadline = time.time() + timeout
    s.send(f)
    sent_again = False
    while time.time() < deadline:
        try:
            r = s.recv(RECV_BUF_LEN)
        except socket.timeout:
            if not sent_again and time.time() > deadline - timeout / 2:
                s.send(f)
                sent_again = True
            continue
        if is_response(r) and tag_of(r) == tag:
            return r
    return None


def cmd_fuzz(iface, shelf, slot, count, seed):
    rng = random.Random(int(seed))
    s = open_sock(iface)
    src = mac_of(iface)
    ethertype = struct.pack(">H", ETH_P_AOE)
    for i in range(int(count)):
        kind = rng.randrange(6)
        if kind == 0:  # truncated headers
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, FUZZ_MAX_TRUNCATED)))
            f = BROADCAST_MAC + src + ethertype + body
        elif kind == 1:  # random everything after the EtherType
            n = rng.randrange(0, ETH_MAX_FRAME_LEN - ETH_HEADER_LEN)
            f = BROADCAST_MAC + src + ethertype + os.urandom(n)
        else:  # well-formed header, random command and argument
            # No Mac Mask List edits: a random mask would lock the test
            # host out (the protocol tests cover mask edits).
            cmd = rng.choice([AOE_CMD_ATA, AOE_CMD_QUERY_CONFIG, AOE_CMD_RESERVE,
                              rng.randrange(AOE_FIRST_VENDOR_CMD, 256)])
            arg = bytes(rng.randrange(256) for _ in range(rng.randrange(0, FUZZ_MAX_ARG)))
            f = frame(src, int(shelf), int(slot), cmd, rng.randrange(1 << 32), arg)
            if rng.randrange(4) == 0:  # wrong version / response flag
                f = (f[:AOE_VERFLAGS_OFFSET] + bytes([rng.randrange(256)])
                     + f[AOE_VERFLAGS_OFFSET + 1:])
        s.send(f[:ETH_MAX_FRAME_LEN])
    # Drain what came back; the point is that the target survives.
    try:
        while True:
            s.recv(RECV_BUF_LEN)
    except socket.timeout:
        pass


def ata_result(r):
    """'aoe_error ata_status ata_err' of an ATA reply."""
    return f"{aoe_error(r)} {r[ATA_STATUS_OFFSET]:#x} {r[ATA_ERR_OFFSET]:#x}"


def cmd_write(iface, shelf, slot, lba, byte):
    s = open_sock(iface)
    data = bytes([int(byte, 16)]) * (WRITE_SECTORS * SECTOR_SIZE)
    tag = new_tag()
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_ATA, tag,
                          ata(ATA_AFLAG_LBA48 | ATA_AFLAG_WRITE, ATA_WRITE_SECTORS_EXT,
                              WRITE_SECTORS, int(lba), data)), tag)
    if r is None:
        sys.exit(1)
    print(ata_result(r))


def cmd_fill(iface, shelf, slot, lba, n):
    s = open_sock(iface)
    src = mac_of(iface)
    counts = {"ok": 0, "ata_errors": 0, "aoe_errors": 0, "no_answer": 0}
    stamp_len = struct.calcsize("<Q")
    for i in range(int(n)):
        tag = TAG_USERLAND | i
        at = int(lba) + WRITE_SECTORS * i
        data = struct.pack("<Q", at) * (WRITE_SECTORS * SECTOR_SIZE // stamp_len)
        r = exchange(s, frame(src, int(shelf), int(slot), AOE_CMD_ATA, tag,
                              ata(ATA_AFLAG_LBA48 | ATA_AFLAG_WRITE, ATA_WRITE_SECTORS_EXT,
                                  WRITE_SECTORS, at, data)), tag)
        if r is None:
            counts["no_answer"] += 1
        elif aoe_error(r):
            counts["aoe_errors"] += 1
        elif r[ATA_STATUS_OFFSET] & ATA_STATUS_ERR:
            counts["ata_errors"] += 1
        else:
            counts["ok"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


def cmd_listen(iface, secs, count=None):
    s = open_sock(iface)
    print("listening", flush=True)  # the socket is bound: frames from now on are seen
    deadline = time.time() + float(secs)
    heard = 0
    while time.time() < deadline and (count is None or heard < int(count)):
        try:
            r = s.recv(RECV_BUF_LEN)
        except socket.timeout:
            continue
        if (r[ETH_DST_OFFSET:ETH_DST_OFFSET + ETH_ALEN] == BROADCAST_MAC
                and len(r) >= QC_STRING_OFFSET and is_response(r)
                and r[AOE_CMD_OFFSET] == AOE_CMD_QUERY_CONFIG):
            shelf = struct.unpack(">H", r[AOE_MAJOR_OFFSET:AOE_MAJOR_OFFSET + AOE_MAJOR_LEN])[0]
            print(f"{shelf}.{r[AOE_MINOR_OFFSET]}", flush=True)
            heard += 1


def cmd_config(iface, shelf, slot):
    s = open_sock(iface)
    tag = new_tag()
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_QUERY_CONFIG, tag,
                          b"\0" * QC_ARG_LEN), tag)
    if r is None:
        sys.exit(1)
    bufcnt, fw, scnt = struct.unpack(QC_REPLY_FORMAT, r[QC_BUFCNT_OFFSET:QC_BUFCNT_OFFSET + QC_REPLY_LEN])
    print(f"bufcnt={bufcnt} sectors={scnt} fw={fw} len={len(r)}")


def cmd_qc(iface, shelf, slot, ccmd, string=""):
    s = open_sock(iface)
    tag = new_tag()
    cfg = string.encode()
    arg = (b"\0" * (QC_VER_CCMD_OFFSET - AOE_ARG_OFFSET)
           + bytes([AOE_VERSION_BYTE | int(ccmd)]) + struct.pack(">H", len(cfg)) + cfg)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_QUERY_CONFIG, tag, arg),
                 tag, timeout=1.0)
    if r is None:
        sys.exit(1)
    if aoe_error(r) or len(r) < QC_STRING_OFFSET:
        print(aoe_error(r), "")
        return
    n = struct.unpack(">H", r[QC_LEN_OFFSET:QC_LEN_OFFSET + QC_LEN_LEN])[0]
    print(aoe_error(r), r[QC_STRING_OFFSET:QC_STRING_OFFSET + n].decode(errors="replace"))


def cmd_read(iface, shelf, slot, lba, count):
    s = open_sock(iface)
    tag = new_tag()
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_ATA, tag,
                          ata(ATA_AFLAG_LBA48, ATA_READ_SECTORS_EXT, int(count), int(lba))), tag)
    if r is None:
        sys.exit(1)
    print(hashlib.md5(r[ATA_DATA_OFFSET:ATA_DATA_OFFSET + SECTOR_SIZE * int(count)]).hexdigest(), len(r))


def cmd_status(iface, shelf, slot, cmd, lba, count):
    s = open_sock(iface)
    tag = new_tag()
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_ATA, tag,
                          ata(ATA_AFLAG_LBA48, int(cmd, 0), int(count), int(lba))), tag)
    if r is None:
        sys.exit(1)
    print(f"{ata_result(r)} {len(r)}")


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def cmd_reserve(iface, shelf, slot, rcmd, *macs):
    s = open_sock(iface)
    tag = new_tag()
    arg = bytes([int(rcmd), len(macs)]) + b"".join(mac_bytes(m) for m in macs)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_RESERVE, tag, arg), tag)
    if r is None:
        sys.exit(1)
    n = r[RES_NMACS_OFFSET]
    listed = (r[RES_MACS_OFFSET + ETH_ALEN * i:RES_MACS_OFFSET + ETH_ALEN * (i + 1)].hex(":")
              for i in range(n))
    print(aoe_error(r), " ".join(listed))


def cmd_mask(iface, shelf, slot, mcmd, *dirs):
    s = open_sock(iface)
    tag = new_tag()
    arg = bytes([0, int(mcmd), 0, len(dirs)])
    for d in dirs:
        dcmd, mac = d.split(":", 1)
        arg += bytes([0, int(dcmd)]) + mac_bytes(mac)
    r = exchange(s, frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_MAC_MASK, tag, arg), tag)
    if r is None:
        sys.exit(1)
    n = r[MASK_COUNT_OFFSET]
    listed = []
    for i in range(n):
        mac_at = MASK_DIRECTIVES_OFFSET + MASK_DIRECTIVE_LEN * i + MASK_DIRECTIVE_MAC_OFFSET
        listed.append(r[mac_at:mac_at + ETH_ALEN].hex(":"))
    print(r[MASK_MERROR_OFFSET], " ".join(listed))


def cmd_vlan_identify(iface, shelf, slot, vid):
    # The kernel strips the tag on receive and reports it in PACKET_AUXDATA,
    # to ETH_P_ALL sockets only (it clears it before protocol handlers).
    SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
    AUXDATA_FORMAT = "IIIHHH"  # struct tpacket_auxdata up to tp_vlan_tci
    AUXDATA_LEN = 20           # sizeof(struct tpacket_auxdata)
    s = open_sock(iface, ETH_P_ALL)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    tag = new_tag()
    f = frame(mac_of(iface), int(shelf), int(slot), AOE_CMD_ATA, tag, ata(0, ATA_IDENTIFY, 1, 0))
    f = f[:ETH_TYPE_OFFSET] + struct.pack(">HH", ETH_P_8021Q, int(vid)) + f[ETH_TYPE_OFFSET:]
    assert len(f) >= ETH_HEADER_LEN + VLAN_TAG_LEN + AOE_HEADER_LEN
    s.send(f)
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            r, anc, _, _ = s.recvmsg(RECV_BUF_LEN, socket.CMSG_SPACE(AUXDATA_LEN))
        except socket.timeout:
            continue
        # The reply arrives untagged: the kernel moved its tag into the auxdata.
        if (len(r) < AOE_ARG_OFFSET
                or r[ETH_TYPE_OFFSET:ETH_TYPE_OFFSET + ETH_TYPE_LEN] != struct.pack(">H", ETH_P_AOE)
                or not is_response(r) or tag_of(r) != tag):
            continue
        vlan = None
        for level, typ, data in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack(AUXDATA_FORMAT,
                                                        data[:struct.calcsize(AUXDATA_FORMAT)])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & VLAN_VID_MASK
        words = r[ATA_DATA_OFFSET:ATA_DATA_OFFSET + SECTOR_SIZE]
        first, end = IDENTIFY_MODEL_WORDS
        model = b"".join(words[IDENTIFY_WORD_LEN * w:IDENTIFY_WORD_LEN * (w + 1)][::-1]
                         for w in range(first, end)).decode().strip()
        print(vlan, model)
        return
    sys.exit(1)


if __name__ == "__main__":
    cmds = {"fuzz": cmd_fuzz, "write": cmd_write, "read": cmd_read, "status": cmd_status,
            "reserve": cmd_reserve, "mask": cmd_mask, "vlan-identify": cmd_vlan_identify,
            "fill": cmd_fill, "listen": cmd_listen, "config": cmd_config, "qc": cmd_qc}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
