#!/usr/bin/env python3
"""make_indexed.py — write token documents as a Megatron-LM indexed dataset.

    make_indexed.py OUT_PREFIX --int32 TOKENS.bin --eos ID [--dtype D]
    make_indexed.py OUT_PREFIX --jsonl DOCS.jsonl [--dtype D]

Writes OUT_PREFIX.idx and OUT_PREFIX.bin in the MMIDIDX format that
Megatron-LM's megatron/core/datasets/indexed_dataset.py writes and reads
(checked against NVIDIA/Megatron-LM commit
d98e8a64ddf34856e74b24714e3bedb2f5a39553; this script shares no code with
it). `sbpc run --data OUT_PREFIX` reads it (runtime/indexed.c). Input:

  --int32 FILE --eos ID  a flat little-endian int32 token file (what
                         `sbpc run --data FILE` reads) cut into documents
                         after each token ID (the EOS ends its document);
                         tokens after the last ID form a last document
  --jsonl FILE           one document per line, a JSON list of token ids

Each document is one sequence (as Megatron's preprocess_data.py writes
without --split-sentences). The .bin holds the sequences' tokens back to
back in the dtype (default: uint16 when every id is below 65500, else
int32, Megatron's choice). The .idx, all little-endian:

  9 bytes  b"MMIDIDX\\x00\\x00"
  u64      version 1
  u8       dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
           6 float64, 7 float32, 8 uint16)
  u64      sequence count N
  u64      document index entries D = documents + 1
  i32[N]   sequence lengths in tokens
  i64[N]   sequence pointers: byte offset of each sequence in the .bin
  i64[D]   document indices: 0, then the sequence count after each document

Only the standard library is used."""
import argparse
import json
import struct
import sys

DTYPES = {  # name: (code, struct letter, min, max)
    "uint8": (1, "B", 0, 255), "int8": (2, "b", -128, 127), "int16": (3, "h", -32768, 32767),
    "int32": (4, "i", -2**31, 2**31 - 1), "int64": (5, "q", -2**63, 2**63 - 1), "uint16": (8, "H", 0, 65535),
}


def docs_from_int32(path, eos):
    raw = open(path, "rb").read()
    if len(raw) % 4:
        sys.exit("%s: length %d is not a multiple of 4 (int32 tokens)" % (path, len(raw)))
    docs, cur = [], []
    for (t,) in struct.iter_unpack("<i", raw):
        cur.append(t)
        if t == eos:
            docs.append(cur)
            cur = []
    if cur:
        docs.append(cur)
    return docs


def docs_from_jsonl(path):
    docs = []
    for n, line in enumerate(open(path), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if not isinstance(d, list) or not all(isinstance(t, int) for t in d):
            sys.exit("%s:%d: a document must be a JSON list of token ids" % (path, n))
        docs.append(d)
    return docs


def write(prefix, docs, dtype):
    code, letter, lo, hi = DTYPES[dtype]
    size = struct.calcsize(letter)
    lengths, pointers, doc_index, at = [], [], [0], 0
    with open(prefix + ".bin", "wb") as b:
        for d in docs:
            bad = [t for t in d if t < lo or t > hi]
            if bad:
                sys.exit("token %d does not fit %s" % (bad[0], dtype))
            b.write(struct.pack("<%d%s" % (len(d), letter), *d))
            lengths.append(len(d))
            pointers.append(at)
            at += len(d) * size
            doc_index.append(len(lengths))
    with open(prefix + ".idx", "wb") as x:
        x.write(b"MMIDIDX\x00\x00")
        x.write(struct.pack("<QB", 1, code))
        x.write(struct.pack("<QQ", len(lengths), len(doc_index)))
        x.write(struct.pack("<%di" % len(lengths), *lengths))
        x.write(struct.pack("<%dq" % len(pointers), *pointers))
        x.write(struct.pack("<%dq" % len(doc_index), *doc_index))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="writes PREFIX.idx and PREFIX.bin")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--int32", help="flat little-endian int32 token file")
    src.add_argument("--jsonl", help="one JSON list of token ids per line")
    ap.add_argument("--eos", type=int, help="with --int32: the token that ends a document")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="token dtype (default uint16 if ids < 65500, else int32)")
    a = ap.parse_args()
    if a.int32 is not None and a.eos is None:
        ap.error("--int32 needs --eos ID")
    docs = docs_from_int32(a.int32, a.eos) if a.int32 else docs_from_jsonl(a.jsonl)
    top = max((max(d) for d in docs if d), default=0)
    write(a.prefix, docs, a.dtype or ("uint16" if top < 65500 else "int32"))
    print("%s.idx, %s.bin: %d documents, %d tokens" % (a.prefix, a.prefix, len(docs), sum(map(len, docs))))


if __name__ == "__main__":
    main()
