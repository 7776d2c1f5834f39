#!/usr/bin/env python3
"""Writes ../GoldenVectors.swift from messages built and encoded by dnspython (an independent
implementation). Run once by hand when a vector is added; the tests do not need Python.

    pip install dnspython==2.9.2 && python3 generate.py

The dig query vector is captured separately (capture-dig.py) and kept in dig-query.hex.
"""
import os, struct
import dns.message, dns.rrset, dns.rdatatype, dns.rdataclass, dns.flags, dns.edns, dns.name, dns.rcode, dns.opcode

HERE = os.path.dirname(os.path.abspath(__file__))

def rr(text):
    return dns.rrset.from_text(*text.split(" ", 4)[:4], text.split(" ", 4)[4]) if False else _rr(text)

def _rr(text):
    owner, ttl, cls, typ, data = text.split(" ", 4)
    return dns.rrset.from_text(owner, int(ttl), cls, typ, data)

def skip_name(w, i):
    while True:
        n = w[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1

def grouped(wire, msg):
    """Hex lines: header, then one line per question and record, each with a comment."""
    lines = []
    h = wire[:12]
    lines.append((h.hex(" ", 2), "header: id, flags, QD AN NS AR counts"))
    i = 12
    qd, an, ns, ar = struct.unpack("!HHHH", wire[4:12])
    texts = []
    for q in msg.question:
        texts.append("question " + q.to_text().lstrip(";"))
    for section, name in ((msg.answer, "answer"), (msg.authority, "authority"), (msg.additional, "additional")):
        for rrset in section:
            for line in rrset.to_text().split("\n"):
                texts.append(name + " " + line)
    if msg.opt is not None:
        texts.append("additional OPT")
    t = 0
    for _ in range(qd):
        j = skip_name(wire, i) + 4
        lines.append((wire[i:j].hex(), texts[t])); t += 1; i = j
    for _ in range(an + ns + ar):
        j = skip_name(wire, i)
        rdlen = struct.unpack("!H", wire[j + 8:j + 10])[0]
        j += 10 + rdlen
        lines.append((wire[i:j].hex(), texts[t] if t < len(texts) else "record")); t += 1; i = j
    assert i == len(wire)
    return lines

def vector(name, msg, expect_rcode=None):
    wire = msg.to_wire()
    back = dns.message.from_wire(wire)
    answers = [l for rrset in back.answer for l in rrset.to_text().split("\n")]
    authority = [l for rrset in back.authority for l in rrset.to_text().split("\n")]
    additional = [l for rrset in back.additional for l in rrset.to_text().split("\n")]
    return dict(name=name, wire=wire, lines=grouped(wire, back), answers=answers,
                authority=authority, additional=additional, rcode=back.rcode())

vectors = []

# 1. A typical query: RD, EDNS 1232 with DO, one cookie option.
q = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=1232, want_dnssec=True,
                           options=[dns.edns.GenericOption(10, bytes.fromhex("0102030405060708"))])
q.id = 0x1234
vectors.append(vector("query-a-edns-cookie", q))

# 2. A typical 5-record response: 2 A, 2 NS in authority, 1 glue A, plus OPT.
r = dns.message.make_response(dns.message.make_query("example.com.", "A", use_edns=0, payload=1232))
r.id = 0xBEEF
r.flags |= dns.flags.AA
r.answer.append(_rr("example.com. 300 IN A 192.0.2.1"))
r.answer[0].add(dns.rdata.from_text("IN", "A", "192.0.2.2"))
ns = _rr("example.com. 3600 IN NS ns1.example.com.")
ns.add(dns.rdata.from_text("IN", "NS", "ns2.example.com."))
r.authority.append(ns)
r.additional.append(_rr("ns1.example.com. 3600 IN A 192.0.2.53"))
vectors.append(vector("response-a-ns-glue", r))

# 3. SRV with targets (never compressed) and address glue, mixed-case owners.
r = dns.message.make_response(dns.message.make_query("_HTTP._tcp.Web.Default.svc.cluster.local.", "SRV"))
r.id = 7
r.flags |= dns.flags.AA
srv = _rr("_HTTP._tcp.Web.Default.svc.cluster.local. 5 IN SRV 0 50 80 10-1-0-4.web.default.svc.cluster.local.")
srv.add(dns.rdata.from_text("IN", "SRV", "0 50 8080 10-1-0-5.web.default.svc.cluster.local."))
r.answer.append(srv)
r.additional.append(_rr("10-1-0-4.web.default.svc.cluster.local. 5 IN A 10.1.0.4"))
r.additional.append(_rr("10-1-0-5.web.default.svc.cluster.local. 5 IN AAAA fd00::1:5"))
vectors.append(vector("response-srv-glue", r))

# 4. NXDOMAIN with the SOA in authority.
r = dns.message.make_response(dns.message.make_query("nope.default.svc.cluster.local.", "A"))
r.id = 0xFFFF
r.flags |= dns.flags.AA
r.set_rcode(dns.rcode.NXDOMAIN)
r.authority.append(_rr("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5"))
vectors.append(vector("response-nxdomain-soa", r))

# 5. TXT (several strings, and a 300-octet text split in two), CAA, MX, PTR, CNAME, unknown type.
r = dns.message.make_response(dns.message.make_query("Example.COM.", "ANY"))
r.id = 4242
r.answer.append(_rr('Example.COM. 60 IN TXT "v=spf1 mx -all" "second \\"quoted\\" string"'))
r.answer.append(_rr('example.com. 60 IN TXT "' + "x" * 255 + '" "' + "y" * 45 + '"'))
r.answer.append(_rr('example.com. 60 IN CAA 128 issue "letsencrypt.org"'))
r.answer.append(_rr("example.com. 60 IN MX 10 mail.EXAMPLE.com."))
r.answer.append(_rr("www.example.com. 60 IN CNAME example.com."))
r.answer.append(_rr("10.2.0.192.in-addr.arpa. 60 IN PTR www.example.com."))
r.answer.append(_rr("example.com. 60 IN TYPE65280 \\# 4 0a000001"))
r.answer.append(_rr("example.com. 60 IN AAAA 2001:db8::1"))
vectors.append(vector("response-mixed-types", r))

# 6. Extended RCODE BADVERS (16) through OPT: header rcode 0, OPT extended bits 1.
r = dns.message.make_response(dns.message.make_query("example.com.", "SOA", use_edns=0))
r.id = 1
r.set_rcode(dns.rcode.BADVERS)
vectors.append(vector("response-badvers", r))

with open(os.path.join(HERE, "dig-query.hex")) as f:
    dig = bytes.fromhex(f.read().split("#")[0].strip())
m = dns.message.from_wire(dig)
vectors.append(vector("dig-query", m) | {"wire": dig, "lines": grouped(dig, m)})

def swift_string_list(items):
    if not items:
        return "[]"
    return "[\n" + "".join("            " + swift_literal(s) + ",\n" for s in items) + "        ]"

def swift_literal(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

out = ["// Generated by Vectors/generate.py from dnspython " + dns.version.version + " output. Do not edit.",
       "// Each vector: the wire bytes as hex (one line per header/question/record, commented),",
       "// and dnspython's own presentation of the sections, checked against ours.",
       "",
       "struct GoldenVector: CustomStringConvertible, Sendable {",
       "    let name: String",
       "    let hex: String",
       "    let rcode: UInt16",
       "    let answers: [String]",
       "    let authority: [String]",
       "    let additional: [String]",
       "    var description: String { name }",
       "}",
       "",
       "let goldenVectors: [GoldenVector] = ["]
for v in vectors:
    hexlines = "\n".join(f"            {h.replace(' ', '')} # {c}" for h, c in v["lines"])
    out.append("    GoldenVector(")
    out.append(f"        name: {swift_literal(v['name'])},")
    out.append(f'        hex: ##"""\n{hexlines}\n            """##,')
    out.append(f"        rcode: {v['rcode']},")
    out.append(f"        answers: {swift_string_list(v['answers'])},")
    out.append(f"        authority: {swift_string_list(v['authority'])},")
    out.append(f"        additional: {swift_string_list(v['additional'])}")
    out.append("    ),")
out.append("]")
with open(os.path.join(HERE, "..", "GoldenVectors.swift"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote", len(vectors), "vectors")
