//! DNS wire format for the DNS check (RFC 1035 §4.1), with `std` only: [`encode_query`]
//! builds a standard query and [`parse_response`] reads the answer to it. Parsing never
//! panics: every read is bounds-checked, and a compressed name may only point strictly
//! backwards (before the start of the name, then before the previous pointer's target), at
//! most 128 times, so a pointer loop is an error, not a hang.

use std::net::IpAddr;

const HEADER_LEN: usize = 12;
const CLASS_IN: u16 = 1;
const MAX_POINTER_HOPS: usize = 128;
/// The longest name in wire form, length bytes and root label included (RFC 1035 §3.1).
const MAX_WIRE_NAME: usize = 255;
const MALFORMED: &str = "malformed answer record";

/// Why a response was not accepted as the answer to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than a header.
    #[error("response too short")]
    TooShort,
    /// Another query's id.
    #[error("id mismatch")]
    IdMismatch,
    /// QR is 0.
    #[error("not a response")]
    NotResponse,
    /// An opcode other than QUERY.
    #[error("unexpected opcode")]
    UnexpectedOpcode,
    /// The question section cannot be read.
    #[error("malformed question")]
    BadQuestion,
    /// The question is not the one asked (or missing from a NOERROR response).
    #[error("question does not match")]
    QuestionMismatch,
    /// An answer record cannot be read, or an address record has the wrong length.
    #[error("{}", MALFORMED)]
    Malformed,
}
const RCODE_NAMES: [&str; 6] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
];

/// Record types a check may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    Aaaa,
    /// A canonical name (alias).
    Cname,
    /// A mail exchange.
    Mx,
    /// An authoritative name server.
    Ns,
    /// A domain name pointer (reverse lookups).
    Ptr,
    /// The start of a zone of authority.
    Soa,
    /// A service location (RFC 2782).
    Srv,
    /// Text strings.
    Txt,
    /// A certification authority authorization (RFC 8659).
    Caa,
}

impl RecordType {
    /// Parses a mnemonic such as `"AAAA"`, ignoring case.
    pub fn from_name(s: &str) -> Option<RecordType> {
        use RecordType::*;
        [A, Aaaa, Cname, Mx, Ns, Ptr, Soa, Srv, Txt, Caa]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// Returns the upper-case mnemonic, such as `"AAAA"`.
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// Returns the TYPE value on the wire, such as 28 for AAAA.
    pub fn code(self) -> u16 {
        self.info().1
    }

    fn info(self) -> (&'static str, u16) {
        match self {
            RecordType::A => ("A", 1),
            RecordType::Aaaa => ("AAAA", 28),
            RecordType::Cname => ("CNAME", 5),
            RecordType::Mx => ("MX", 15),
            RecordType::Ns => ("NS", 2),
            RecordType::Ptr => ("PTR", 12),
            RecordType::Soa => ("SOA", 6),
            RecordType::Srv => ("SRV", 33),
            RecordType::Txt => ("TXT", 16),
            RecordType::Caa => ("CAA", 257),
        }
    }
}

/// Parses a response code name (`NOERROR`, `FORMERR`, `SERVFAIL`, `NXDOMAIN`, `NOTIMP`,
/// `REFUSED`), ignoring case.
pub fn rcode_from_name(s: &str) -> Option<u8> {
    let i = RCODE_NAMES.iter().position(|n| n.eq_ignore_ascii_case(s))?;
    u8::try_from(i).ok()
}

/// Returns the name of a response code: `"NXDOMAIN"`, or `"RCODE<n>"` for unnamed codes.
pub fn rcode_name(code: u8) -> String {
    let name = RCODE_NAMES.get(usize::from(code));
    name.map_or_else(|| format!("RCODE{code}"), |n| (*n).to_string())
}

/// Validates a query name before it is encoded.
///
/// Allowed: ASCII letters, digits, `-`, `_` and `.`; labels of 1 to 63 bytes; at most 253
/// bytes in all (not counting an optional trailing dot); `"."` alone is the root.
pub fn check_name(name: &str) -> Result<(), String> {
    if name == "." {
        return Ok(());
    } else if name.is_empty() {
        return Err("name is empty".to_string());
    }
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.len() > 253 {
        return Err("name is longer than 253 bytes".to_string());
    }
    for label in body.split('.') {
        let bad = |c: &char| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_');
        if label.is_empty() {
            return Err(format!("name {name:?} has an empty label"));
        } else if let Some(c) = label.chars().find(bad) {
            let c = c.escape_debug();
            return Err(format!("name {name:?} contains invalid character '{c}'"));
        } else if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 bytes"));
        }
    }
    Ok(())
}

/// Appends `name` in wire form; empty labels are skipped and labels cut at 63 bytes, so that
/// a name [`check_name`] rejects still encodes (and the server then answers FORMERR).
fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = label.as_bytes();
        let bytes = bytes.get(..63).unwrap_or(bytes);
        out.push(u8::try_from(bytes.len()).unwrap_or(63));
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

/// Encodes a standard query: the given id, RD=1, one question (name, type, class IN), no EDNS.
///
/// The name should pass [`check_name`]; one that does not is encoded on a best-effort basis
/// (empty labels dropped, labels cut at 63 bytes) rather than panicking.
pub fn encode_query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    // Flags (RD), QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0.
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out);
    out.extend_from_slice(&rtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// What a response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The response code (the header's 4 bits: no EDNS, so no extended codes).
    pub rcode: u8,
    /// Whether the TC bit is set (the full answer needs TCP).
    pub truncated: bool,
    /// Addresses of the A and AAAA records (class IN) in the answer section, whatever their
    /// owner (CNAME chains are common, so they are not filtered by owner).
    pub addresses: Vec<IpAddr>,
    /// How many answer records (class IN) have the asked type.
    pub answers_of_type: usize,
    /// All answer records.
    pub answers: usize,
}

/// Returns `msg[pos..pos + len]`, or `None` if any of it is out of bounds.
fn slice(msg: &[u8], pos: usize, len: usize) -> Option<&[u8]> {
    msg.get(pos..pos.checked_add(len)?)
}

/// Reads the big-endian `u16` at `pos`.
fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    let bytes = <[u8; 2]>::try_from(slice(msg, pos, 2)?).ok()?;
    Some(u16::from_be_bytes(bytes))
}

/// Reads the name at `start`: returns it uncompressed in wire form with its labels
/// lowercased, and the offset just past it in the message.
fn read_name(msg: &[u8], start: usize) -> Option<(Vec<u8>, usize)> {
    let (mut name, mut pos, mut hops) = (Vec::new(), start, 0);
    let mut limit = start; // the next pointer must point strictly before this
    let mut end = None; // just past the first pointer, once one is followed
    loop {
        let len = *msg.get(pos)?;
        match len & 0xC0 {
            0x00 => {
                let label = slice(msg, pos.checked_add(1)?, usize::from(len))?;
                if name.len() + label.len() + 1 > MAX_WIRE_NAME {
                    return None; // name.len() stays <= 255, so no overflow
                }
                name.push(len);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                pos = pos.checked_add(1 + label.len())?;
                if len == 0 {
                    return Some((name, end.unwrap_or(pos)));
                }
            }
            0xC0 => {
                let target = usize::from(u16_at(msg, pos)? & 0x3FFF);
                hops += 1;
                if target >= limit || hops > MAX_POINTER_HOPS {
                    return None;
                }
                end = end.or(pos.checked_add(2));
                (limit, pos) = (target, target);
            }
            _ => return None, // 0x40 and 0x80: extended and reserved label types
        }
    }
}

/// Reads the resource record at `pos`: its type, class, data and the offset just past it;
/// `None` if it is malformed or runs past the end of the message.
fn read_record(msg: &[u8], pos: usize) -> Option<(u16, u16, &[u8], usize)> {
    let (_, at) = read_name(msg, pos)?;
    // TYPE, CLASS, TTL (skipped), RDLENGTH.
    let [t0, t1, c0, c1, _, _, _, _, l0, l1] = <[u8; 10]>::try_from(slice(msg, at, 10)?).ok()?;
    let rdlength = usize::from(u16::from_be_bytes([l0, l1]));
    let rdata = slice(msg, at.checked_add(10)?, rdlength)?;
    let (rtype, class) = (u16::from_be_bytes([t0, t1]), u16::from_be_bytes([c0, c1]));
    Some((rtype, class, rdata, at.checked_add(10 + rdlength)?))
}

/// Returns `Err(error)` unless `ok`.
fn ensure(ok: bool, error: WireError) -> Result<(), WireError> {
    ok.then_some(()).ok_or(error)
}

/// Parses a response to the query `encode_query(id, name, rtype)`.
///
/// Checks the id, QR=1, opcode QUERY, and that the question echoes the name (ignoring case),
/// type and class; then walks every answer record. Authority and additional sections are
/// not read. A response with no question is accepted only with a non-zero rcode (some
/// servers omit it in FORMERR, NOTIMP or REFUSED). When TC is set the answer section may
/// end early: records after the last complete one are ignored. Err says why, in a short
/// lowercase message such as "id mismatch" or "malformed answer record".
pub fn parse_response(
    bytes: &[u8],
    id: u16,
    name: &str,
    rtype: RecordType,
) -> Result<Response, WireError> {
    let header: Option<[u8; 12]> = bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok());
    let [i0, i1, f0, f1, q0, q1, a0, a1, ..] = header.ok_or(WireError::TooShort)?;
    ensure(u16::from_be_bytes([i0, i1]) == id, WireError::IdMismatch)?;
    ensure(f0 & 0x80 != 0, WireError::NotResponse)?;
    ensure(f0 & 0x78 == 0, WireError::UnexpectedOpcode)?;
    let (rcode, truncated) = (f1 & 0x0F, f0 & 0x02 != 0);

    let mut pos = HEADER_LEN;
    match u16::from_be_bytes([q0, q1]) {
        1 => {
            let (mut question, at) = read_name(bytes, pos).ok_or(WireError::BadQuestion)?;
            question.extend_from_slice(slice(bytes, at, 4).ok_or(WireError::BadQuestion)?);
            let mut expected = Vec::new();
            encode_name(name, &mut expected);
            expected.make_ascii_lowercase();
            expected.extend_from_slice(&rtype.code().to_be_bytes());
            expected.extend_from_slice(&CLASS_IN.to_be_bytes());
            ensure(question == expected, WireError::QuestionMismatch)?;
            pos = at.checked_add(4).ok_or(WireError::BadQuestion)?;
        }
        0 if rcode != 0 => {}
        _ => return Err(WireError::QuestionMismatch),
    }

    let mut response = Response {
        rcode,
        truncated,
        addresses: Vec::new(),
        answers_of_type: 0,
        answers: 0,
    };
    for _ in 0..u16::from_be_bytes([a0, a1]) {
        let Some((rt, class, rdata, next)) = read_record(bytes, pos) else {
            ensure(truncated, WireError::Malformed)?;
            break;
        };
        if class == CLASS_IN {
            let address = match (rt, <[u8; 4]>::try_from(rdata), <[u8; 16]>::try_from(rdata)) {
                (1, Ok(v4), _) => Some(IpAddr::from(v4)),
                (28, _, Ok(v6)) => Some(IpAddr::from(v6)),
                (1 | 28, _, _) => return Err(WireError::Malformed),
                _ => None,
            };
            response.addresses.extend(address);
            response.answers_of_type += usize::from(rt == rtype.code());
        }
        response.answers += 1;
        pos = next;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordType::{Aaaa, A};

    const ID: u16 = 0x1234;
    const OK: u16 = 0x8180; // QR, RD, RA, NOERROR
    const TC: u16 = 0x8380; // the same with TC
    const WWW: &str = "www.example.com";

    /// A response to `encode_query(ID, name, rtype)` with these flags, ANCOUNT and answers.
    fn reply(name: &str, rtype: RecordType, flags: u16, ancount: u16, answers: &[u8]) -> Vec<u8> {
        let mut m = encode_query(ID, name, rtype);
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(answers);
        m
    }

    /// An answer record owned by a pointer to `owner`, class IN, TTL 3600.
    fn record(owner: usize, rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let ([o0, o1], [t0, t1]) = ((0xC000 | owner as u16).to_be_bytes(), rtype.to_be_bytes());
        let [l0, l1] = (rdata.len() as u16).to_be_bytes();
        [&[o0, o1, t0, t1, 0, 1, 0, 0, 0x0e, 0x10, l0, l1], rdata].concat()
    }

    /// `www.example.com` A, answered by a CNAME (owner: the question, at 12) to
    /// `web.example.com` ("web" then a pointer to "example" at 16), and an A record owned
    /// by a pointer to the CNAME's data (at 45).
    fn cname_then_a(flags: u16) -> Vec<u8> {
        let mut answers = record(12, 5, &[3, b'w', b'e', b'b', 0xC0, 16]);
        answers.extend(record(45, 1, &[192, 0, 2, 7]));
        reply(WWW, A, flags, 2, &answers)
    }

    fn www(m: &[u8]) -> Result<Response, WireError> {
        parse_response(m, ID, WWW, A)
    }

    fn err(m: &[u8]) -> String {
        www(m).unwrap_err().to_string()
    }

    #[test]
    fn query_matches_rfc_1035_layout() {
        let expected = [
            0x12, 0x34, // ID
            0x01, 0x00, // QR=0 OPCODE=0 AA=0 TC=0 RD=1, RA=0 Z=0 RCODE=0
            0x00, 0x01, // QDCOUNT
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ANCOUNT, NSCOUNT, ARCOUNT
            5, b'c', b'h', b'e', b'c', b'k', 5, b'l', b'o', b'c', b'a', b'l', 0, // QNAME
            0x00, 0x1c, // QTYPE AAAA
            0x00, 0x01, // QCLASS IN
        ];
        assert_eq!(encode_query(0x1234, "check.local", Aaaa), expected);
        assert_eq!(encode_query(0x1234, "check.local.", Aaaa), expected);
        assert_eq!(encode_query(7, ".", RecordType::Ns)[12..], [0, 0, 2, 0, 1]);
    }

    #[test]
    fn record_types_and_rcodes() {
        use RecordType::*;
        let all = [A, Aaaa, Cname, Mx, Ns, Ptr, Soa, Srv, Txt, Caa];
        for (t, code) in all.into_iter().zip([1, 28, 5, 15, 2, 12, 6, 33, 16, 257]) {
            assert_eq!(t.code(), code);
            assert_eq!(RecordType::from_name(t.name()), Some(t));
            assert_eq!(RecordType::from_name(&t.name().to_lowercase()), Some(t));
        }
        assert_eq!(RecordType::from_name("AAAAA"), None);
        for (code, name) in RCODE_NAMES.iter().enumerate() {
            assert_eq!(rcode_from_name(name), Some(code as u8));
            assert_eq!(rcode_name(code as u8), *name);
        }
        assert_eq!(rcode_from_name("nxDomain"), Some(3));
        assert_eq!(rcode_from_name("RCODE9"), None);
        assert_eq!(rcode_name(9), "RCODE9");
    }

    #[test]
    fn check_name_rules() {
        for ok in [".", "a", "check.local.", "_dns._udp.x-y.example"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(64);
        let e = format!("label \"{long}\" is longer than 63 bytes");
        assert_eq!(check_name(&long), Err(e));
        let name = vec!["a".repeat(63); 4].join(".");
        assert_eq!(check_name(&name[..253]), Ok(()));
        assert_eq!(check_name(&format!("{}.", &name[..253])), Ok(()));
        let e = "name is longer than 253 bytes".to_string();
        assert_eq!(check_name(&name[..254]), Err(e));
        assert_eq!(check_name(""), Err("name is empty".to_string()));
        let e = "name \"a..b\" has an empty label".to_string();
        assert_eq!(check_name("a..b"), Err(e));
        let e = "name \"a b\" contains invalid character ' '".to_string();
        assert_eq!(check_name("a b"), Err(e));
        for bad in [".a", "a..", "é.fr", "a/b", "a\n"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aaaa_answer_with_pointer_to_question() {
        let addr: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let m = reply("check.local", Aaaa, OK, 1, &record(12, 28, &addr.octets()));
        let expected = Ok(Response {
            rcode: 0,
            truncated: false,
            addresses: vec![IpAddr::V6(addr)],
            answers_of_type: 1,
            answers: 1,
        });
        assert_eq!(parse_response(&m, ID, "check.local", Aaaa), expected);
        // Case and a trailing dot do not matter (0x20 randomization).
        assert_eq!(parse_response(&m, ID, "CHECK.Local.", Aaaa), expected);
    }

    #[test]
    fn cname_then_a_record() {
        let r = www(&cname_then_a(OK)).unwrap();
        assert_eq!(r.addresses, vec![IpAddr::from([192, 0, 2, 7])]);
        let counts = (r.rcode, r.truncated, r.answers_of_type, r.answers);
        assert_eq!(counts, (0, false, 1, 2));
        let r = parse_response(&cname_then_a(OK), ID, WWW, RecordType::Cname);
        let r = r.map_err(|e| e.to_string());
        assert_eq!(r, Err("question does not match".to_string()));
    }

    #[test]
    fn rcodes_and_truncation() {
        for (flags, rcode, tc) in [(0x8183, 3, false), (0x8182, 2, false), (TC, 0, true)] {
            let r = www(&reply(WWW, A, flags, 0, &[])).unwrap();
            assert_eq!((r.rcode, r.truncated, r.answers), (rcode, tc, 0));
        }
        // A truncated response whose answer section is cut keeps its complete records.
        let m = cname_then_a(TC);
        let r = www(&m[..m.len() - 2]).unwrap();
        assert_eq!((r.truncated, r.answers, r.addresses.len()), (true, 1, 0));
        // REFUSED without a question section is accepted, NOERROR is not.
        let mut m = reply(WWW, A, 0x8185, 0, &[]);
        m.truncate(12);
        m[5] = 0;
        assert_eq!(www(&m).unwrap().rcode, 5);
        m[3] = 0x80;
        assert_eq!(err(&m), "question does not match");
    }

    #[test]
    fn header_and_record_errors() {
        let m = cname_then_a(OK);
        let wrong_id = parse_response(&m, ID + 1, WWW, A).map_err(|e| e.to_string());
        assert_eq!(wrong_id, Err("id mismatch".to_string()));
        assert_eq!(err(&m[..11]), "response too short");
        for other in ["www.example.org", "example.com", "www.example.com.x"] {
            let r = parse_response(&m, ID, other, A).map_err(|e| e.to_string());
            assert_eq!(r, Err("question does not match".to_string()));
        }
        assert_eq!(err(&encode_query(ID, WWW, A)), "not a response");
        let mut opcode = m.clone();
        opcode[2] |= 0x10;
        assert_eq!(err(&opcode), "unexpected opcode");
        assert_eq!(
            err(&reply(WWW, A, OK, 1, &record(12, 1, &[1, 2]))),
            MALFORMED
        );
        assert_eq!(err(&m[..m.len() - 1]), MALFORMED);
    }

    #[test]
    fn pointer_loops_fail_and_hops_are_bounded() {
        let m = reply(WWW, A, OK, 1, &[]);
        let at = m.len() as u8;
        // To itself, to a label leading back to it, forwards, a reserved label type.
        let owners = [
            &[0xC0, at][..],
            &[1, b'a', 0xC0, at],
            &[0xC0, 0xFF],
            &[0x80],
        ];
        for owner in owners {
            let mut bad = m.clone();
            bad.extend_from_slice(owner);
            bad.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
            assert_eq!(err(&bad), MALFORMED, "{owner:?}");
        }
        // A chain of backward pointers in a record's data, followed from the next owner.
        for (links, ok) in [(MAX_POINTER_HOPS - 1, true), (MAX_POINTER_HOPS, false)] {
            let data_at = m.len() + 12;
            let mut chain = vec![0xC0, 12];
            for i in 1..links {
                chain.extend((0xC000 | (data_at + 2 * i - 2) as u16).to_be_bytes());
            }
            let mut answers = record(12, 99, &chain);
            answers.extend(record(data_at + 2 * links - 2, 1, &[1, 2, 3, 4]));
            assert_eq!(www(&reply(WWW, A, OK, 2, &answers)).is_ok(), ok, "{links}");
        }
    }

    #[test]
    fn every_cut_is_handled() {
        for flags in [OK, TC] {
            let full = cname_then_a(flags);
            assert!(www(&full).is_ok());
            for len in 0..full.len() {
                // Without TC a cut response is an error; with TC, maybe not.
                assert!(www(&full[..len]).is_err() || flags == TC, "cut at {len}");
            }
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = cname_then_a(OK);
        for i in 0..6000 {
            let mut m: Vec<u8> = if i % 2 == 0 {
                (0..next() % 96).map(|_| next() as u8).collect()
            } else {
                let mut m = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % m.len() as u64) as usize;
                    m[at] = next() as u8;
                }
                m
            };
            if m.len() >= 4 && i % 3 != 0 {
                m[0..2].copy_from_slice(&ID.to_be_bytes());
                m[2] = 0x80 | (m[2] & 0x07); // a response, opcode QUERY
            }
            let _ = www(&m);
        }
    }
}
