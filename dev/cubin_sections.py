#!/usr/bin/env python3
"""Print one line per kernel-code section of a cubin: its name and a hash of its bytes.

A cubin is an ELF file. The machine code of kernel K is the section `.text.K`; its resource
table is `.nv.info.K`, its parameter/constant bank `.nv.constant0.K`, its static shared memory
`.nv.shared.K` (size only) and its relocations `.rela.text.K` (hashed with the symbol names they
point to, not their indices). Debug sections (-lineinfo) are left out: they change with every
edited line while the code does not.

Two builds of the same .cu give the same lines exactly when every kernel's machine code and
resources are byte-identical. The hash of an anonymous namespace (`_GLOBAL__N__<hash>_<file>`)
is replaced by ANON so that a renamed or edited file still compares.

    python3 dev/cubin_sections.py a.cubin > a.txt; python3 dev/cubin_sections.py b.cubin > b.txt
    diff a.txt b.txt          (dev/attention_cubins.sh does this for every attention kernel)
"""
import hashlib
import re
import struct
import sys

KEEP = (".text.", ".nv.constant", ".nv.shared.", ".rela.text.", ".rel.text.", ".nv.global")
# .nv.info attributes whose payload starts with a symbol index (hashed by the symbol's name):
# PARAM_CBANK, FRAME_SIZE, MIN_STACK_SIZE, MAX_STACK_SIZE, REGCOUNT.
SYM_ATTRS = {0x0A, 0x11, 0x12, 0x23, 0x2F}


def sections(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    out = []
    for i in range(shnum):
        name, typ, flags, addr, off, size, link, info, align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize)
        out.append(dict(name=name, type=typ, off=off, size=size, link=link, info=info,
                        entsize=entsize))
    strtab = out[shstrndx]
    for s in out:
        start = strtab["off"] + s["name"]
        s["name"] = data[start:data.index(b"\0", start)].decode()
    return out


def symbol_names(data, secs):
    for s in secs:
        if s["type"] == 2:  # SHT_SYMTAB
            strtab = secs[s["link"]]
            names = []
            for k in range(s["size"] // 24):
                st_name, = struct.unpack_from("<I", data, s["off"] + k * 24)
                start = strtab["off"] + st_name
                names.append(data[start:data.index(b"\0", start)].decode())
            return names
    return []


def normalize(name):
    """Replaces each <length>_GLOBAL__N__... (an anonymous namespace, mangled) by ANON."""
    out, pos = [], 0
    for m in re.finditer(r"(\d+)_GLOBAL__N__", name):
        if m.start() < pos:
            continue
        out.append(name[pos:m.start()] + "ANON")
        pos = m.start(1) + len(m.group(1)) + int(m.group(1))
    return re.sub(r"\$__internal_\d+_", "$__internal_N_", "".join(out) + name[pos:])


def info_records(data, sec, syms):
    """The attribute records of a .nv.info section, one text line each, symbol indices named."""
    out, pos, end = [], sec["off"], sec["off"] + sec["size"]
    while pos < end:
        fmt, attr = data[pos], data[pos + 1]
        if fmt == 0x04:  # EIFMT_SVAL: a 16-bit size, then the payload
            size, = struct.unpack_from("<H", data, pos + 2)
            payload = data[pos + 4:pos + 4 + size]
            pos += 4 + size
            if attr in SYM_ATTRS and size >= 4:
                idx, = struct.unpack_from("<I", payload, 0)
                name = normalize(syms[idx]) if idx < len(syms) else "?%d" % idx
                out.append("attr %02x %s %s" % (attr, name, payload[4:].hex()))
                continue
            out.append("attr %02x %s" % (attr, payload.hex()))
        else:  # EIFMT_NVAL / BVAL / HVAL: a 16-bit value
            out.append("attr %02x %s" % (attr, data[pos + 2:pos + 4].hex()))
            pos += 4
    return out


def main(path):
    data = open(path, "rb").read()
    secs = sections(data)
    syms = symbol_names(data, secs)
    rows = []
    for s in secs:
        if s["name"] == ".nv.info" or s["name"].startswith(".nv.info."):
            base = normalize(s["name"])
            rows += ["%s %s" % (base, r) for r in info_records(data, s, syms)]
            continue
        if not s["name"].startswith(KEEP):
            continue
        if s["type"] == 8:  # SHT_NOBITS: only the size means anything
            digest = "size=%d" % s["size"]
        elif s["type"] == 4:  # SHT_RELA: offset, type, addend, and the symbol by name
            h = hashlib.sha256()
            for k in range(s["size"] // 24):
                off, info, addend = struct.unpack_from("<QQq", data, s["off"] + k * 24)
                h.update(b"%d %d %d %s;" % (off, info & 0xFFFFFFFF, addend,
                                            normalize(syms[info >> 32]).encode()))
            digest = h.hexdigest()[:16]
        else:
            digest = hashlib.sha256(data[s["off"]:s["off"] + s["size"]]).hexdigest()[:16]
        rows.append("%s %s" % (normalize(s["name"]), digest))
    print("\n".join(sorted(rows)))


if __name__ == "__main__":
    main(sys.argv[1])
