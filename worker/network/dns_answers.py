"""What the embedded resolver says to one DNS question (pure: bytes in, a decision out).

A question about a name on the asker's networks is answered here: A with the addresses,
AAAA and other types empty (NOERROR: the name exists, with IPv4 only), PTR for the
containers' addresses. Anything else is to be forwarded to the host's resolvers unchanged.
Bytes that are no DNS query get FORMERR when their header can be read, and nothing at all
otherwise (nor when they are a response: answering those could make two resolvers loop).
Parsing and writing DNS is dnspython's.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.reversename import to_address

from worker.network.names import NameTable

TTL = 600  # Docker's embedded resolver's
HEADER = 12
QR = 0x8000
# Without EDNS a UDP reply must fit 512 bytes: 12 of header, the question (a name of at most
# 255 bytes, 4 more), and 16 per compressed A record leave room for 14 of them. Over TCP the
# 65,535-byte frame allows thousands; a client rarely wants more than a few.
MAX_UDP_ANSWERS = 14
MAX_TCP_ANSWERS = 1000


@dataclass(frozen=True, slots=True)
class Forward:
    """Ask the upstream resolvers and relay their answer (the query as received)."""

    query: bytes


Decision = bytes | Forward | None


def decide(data: bytes, table: NameTable, networks: frozenset[str], *,
           max_answers: int = MAX_UDP_ANSWERS) -> Decision:
    """The reply to ``data`` from a container on ``networks``, a Forward, or None (drop)."""
    if len(data) < HEADER or struct.unpack_from("!H", data, 2)[0] & QR:
        return None
    try:
        query = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, UnicodeError, IndexError, struct.error):
        return error_reply(data, dns.rcode.FORMERR)
    if query.opcode() != dns.opcode.QUERY:
        return error_reply(data, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return error_reply(data, dns.rcode.FORMERR)
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN or not networks:
        return Forward(data)
    if question.rdtype == dns.rdatatype.PTR:
        return _pointer(query, question.name, table, networks) or Forward(data)
    addresses = table.lookup(question.name.to_text(omit_final_dot=True), networks)
    if addresses is None:
        return Forward(data)
    reply = dns.message.make_response(query, recursion_available=True)
    reply.flags |= dns.flags.AA
    if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        reply.answer.append(dns.rrset.from_text_list(
            question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A,
            addresses[:max_answers]))
    wire: bytes = reply.to_wire(want_shuffle=False)  # the rotation is ours, not random
    return wire


def _pointer(query: dns.message.Message, name: dns.name.Name, table: NameTable,
             networks: frozenset[str]) -> bytes | None:
    try:
        address = to_address(name)
        ipaddress.IPv4Address(address)
    except (dns.exception.DNSException, ValueError):
        return None
    found = table.reverse(address, networks)
    if found is None:
        return None
    reply = dns.message.make_response(query, recursion_available=True)
    reply.flags |= dns.flags.AA
    reply.answer.append(dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN,
                                                 dns.rdatatype.PTR, [found + "."]))
    wire: bytes = reply.to_wire()
    return wire


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply with ``rcode`` to the query whose bytes begin ``data`` (its id,
    opcode and RD kept), or None when there is no header to answer."""
    if len(data) < HEADER:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    opcode_and_rd = flags & 0x7900  # opcode (4 bits) and RD
    return struct.pack("!HHHHHH", ident, QR | opcode_and_rd | 0x0080 | (rcode & 0xF),
                       0, 0, 0, 0)


def plausible_reply(query: bytes, reply: bytes) -> bool:
    """Whether ``reply`` can be the upstream's answer to ``query``: a response, same id."""
    return len(reply) >= HEADER and reply[:2] == query[:2] and bool(
        struct.unpack_from("!H", reply, 2)[0] & QR)
