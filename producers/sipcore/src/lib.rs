//! Native fast path of `producers/sip_parser.py` (`parse_sip`).
//!
//! `parse(data, correlation_headers)` returns the field values of a `ParsedSip` as a tuple (in the
//! dataclass field order after `raw`) for the COMMON well-formed message, or `None` for anything
//! it does not reproduce exactly; the Python parser then handles the message. The contract is:
//! a `None` is always allowed, a different result never is.
//!
//! `RecordBuilder(...).build(data, ts, src_ip, src_port, dst_ip, dst_port, transport)` is the capture
//! fast path's `to_record(parse_sip(...), ...)` (`producers/sip_record.py: native_builder`) in one call:
//! the same parse, then the `SipMessage` record itself, its id (`message_id`) and its `raw` text; it
//! declines when `parse` does (and for a capture time that is not finite).
//!
//! What is declined (-> None), so that every rule below only has to hold for plain ASCII text:
//! * a header block (start line .. CRLF CRLF) with any byte outside printable ASCII + HTAB, a CR
//!   not followed by LF or an LF not preceded by CR (bare LF, no blank line, non-UTF-8, controls);
//! * leading whitespace (note `leading_crlf`), HTAB in the start line, a start line off the
//!   Python fast path (`lws_in_start_line`, errors), folded lines, lines without a colon or with a
//!   name that is empty or has inner LWS (`malformed_header_line`);
//! * every error condition (missing Call-ID/CSeq, bad CSeq, bad/too large Content-Length, ...);
//! * header blocks over 16 KiB (after the start line), a lenient-only (`_LENIENT`) address form;
//! * non-ASCII SDP bodies (multipart parts too), non-ASCII correlation header names.
//!
//! Each helper below mirrors one Python function / regular expression of sip_parser.py (named in
//! its doc comment), including the backtracking behaviour of the regex on ASCII input.

use pyo3::prelude::*;
use pyo3::intern;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use std::borrow::Cow;

const MAX_HEADER_FIELD: usize = 16 * 1024;
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Python `str.isspace` / regex `\s` restricted to ASCII.
#[inline]
fn is_py_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ')
}

/// Regex `\w` (Python, Unicode patterns) restricted to ASCII.
#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[inline]
fn is_sp_tab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Python `str.strip()` on an ASCII string.
#[inline]
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_py_space(c as u8))
}

#[inline]
fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_ascii() && is_py_space(c as u8))
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_sp_tab(b[i]) {
        i += 1;
    }
    i
}

#[inline]
fn nonempty(s: &str) -> Option<&str> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

#[inline]
fn upto_comma(s: &str) -> &str {
    match s.find(',') {
        Some(i) => &s[..i],
        None => s,
    }
}

#[inline]
fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'.' || c == b'-'
}

/// `[A-Za-z][A-Za-z0-9+.-]*:` at `i`: the index of the colon.
#[inline]
fn scheme_at(b: &[u8], i: usize) -> Option<usize> {
    if i >= b.len() || !b[i].is_ascii_alphabetic() {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() && is_scheme_char(b[j]) {
        j += 1;
    }
    if j < b.len() && b[j] == b':' {
        Some(j)
    } else {
        None
    }
}

/// `"([^"\\]*(?:\\.[^"\\]*)*)"` starting at the quote `b[i]`: index of the closing quote.
#[inline]
fn quoted_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'"' => return Some(j),
            b'\\' => {
                if j + 1 >= b.len() {
                    return None;
                }
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// `_unquote`: `\\(.)` -> `\1`.
fn unquote(q: &str) -> Cow<'_, str> {
    if !q.contains('\\') {
        return Cow::Borrowed(q);
    }
    let mut out = String::with_capacity(q.len());
    let mut it = q.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn nonempty_cow(c: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if c.is_empty() {
        None
    } else {
        Some(c)
    }
}

/// `_user_host`.
fn user_host<'a>(scheme: &str, userinfo: Option<&'a str>, host: &'a str) -> (Option<&'a str>, Option<&'a str>) {
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let u = userinfo.map(|u| match u.find(':') {
            Some(k) => &u[..k],
            None => u,
        });
        (u.and_then(nonempty), nonempty(host))
    } else if scheme.eq_ignore_ascii_case("tel") {
        (nonempty(host), None)
    } else {
        (None, None)
    }
}

/// `_uri_parts` (regex `_URI`).
fn uri_parts(uri: &str) -> (Option<&str>, Option<&str>) {
    if uri.is_empty() {
        return (None, None);
    }
    let b = uri.as_bytes();
    let i = skip_ws(b, 0);
    let Some(c) = scheme_at(b, i) else {
        return (None, None);
    };
    let scheme = &uri[i..c];
    let k = c + 1;
    let (userinfo, h) = match uri[k..].find('@') {
        Some(m) => (Some(&uri[k..k + m]), k + m + 1),
        None => (None, k),
    };
    let host = if h < b.len() && b[h] == b'[' {
        match uri[h + 1..].find(']') {
            Some(m) => &uri[h..h + m + 2],
            None => "",
        }
    } else {
        let mut e = h;
        while e < b.len() && !matches!(b[e], b':' | b';' | b'?' | b'>' | b' ' | b'\t' | b'[') {
            e += 1;
        }
        &uri[h..e]
    };
    user_host(scheme, userinfo, host)
}

struct NameAddr<'a> {
    quoted: Option<&'a str>,
    token: &'a str,
    uri: &'a str,
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    end: usize,
}

/// The common prefix `_NAME_ADDR` of `_NAME_ADDR_SINGLE`, `_NAME_ADDR_LIST` and `_FROM_TO` (match).
fn name_addr(v: &str) -> Option<NameAddr<'_>> {
    let b = v.as_bytes();
    let i = skip_ws(b, 0);
    let quoted;
    let token;
    let mut j;
    if i < b.len() && b[i] == b'"' {
        let e = quoted_end(b, i)?;
        quoted = Some(&v[i + 1..e]);
        token = "";
        j = skip_ws(b, e + 1);
        if j >= b.len() || b[j] != b'<' {
            return None;
        }
    } else {
        j = i;
        while j < b.len() && !matches!(b[j], b'<' | b'>' | b'"') {
            j += 1;
        }
        if j >= b.len() || b[j] != b'<' {
            return None;
        }
        quoted = None;
        token = &v[i..j];
    }
    j = skip_ws(b, j + 1);
    let us = j;
    let c = scheme_at(b, j)?;
    let scheme = &v[us..c];
    let k = c + 1;
    let mut m = k;
    while m < b.len() && b[m] != b'@' && b[m] != b'>' {
        m += 1;
    }
    let (userinfo, h) = if m < b.len() && b[m] == b'@' { (Some(&v[k..m]), m + 1) } else { (None, k) };
    let (host, e) = if h < b.len() && b[h] == b'[' {
        let mut q = h + 1;
        while q < b.len() && b[q] != b']' && b[q] != b'>' {
            q += 1;
        }
        if q < b.len() && b[q] == b']' {
            (&v[h..q + 1], q + 1)
        } else {
            ("", h)
        }
    } else {
        let mut q = h;
        while q < b.len() && !matches!(b[q], b':' | b';' | b'?' | b'>' | b' ' | b'\t' | b'[') {
            q += 1;
        }
        (&v[h..q], q)
    };
    let mut g = e;
    while g < b.len() && b[g] != b'>' {
        g += 1;
    }
    if g >= b.len() {
        return None;
    }
    Some(NameAddr { quoted, token, uri: &v[us..g], scheme, userinfo, host, end: g + 1 })
}

struct Addr<'a> {
    display: Option<Cow<'a, str>>,
    uri: Option<&'a str>,
    user: Option<&'a str>,
    host: Option<&'a str>,
    params: &'a str,
}

fn display_of<'a>(na: &NameAddr<'a>) -> Option<Cow<'a, str>> {
    match na.quoted {
        Some(q) => nonempty_cow(unquote(q)),
        None => nonempty(py_strip(na.token)).map(Cow::Borrowed),
    }
}

/// `_address(value, single)`: NAME_ADDR, else ADDR_SPEC, else LENIENT. `Err(())` = decline.
fn address(v: &str, single: bool) -> Result<Addr<'_>, ()> {
    if let Some(na) = name_addr(v) {
        let tail = &v[na.end..];
        let params = if single { tail } else { upto_comma(tail) };
        let uri = if na.uri.ends_with(' ') || na.uri.ends_with('\t') { py_rstrip(na.uri) } else { na.uri };
        let (user, host) = user_host(na.scheme, na.userinfo, na.host);
        return Ok(Addr { display: display_of(&na), uri: Some(uri), user, host, params });
    }
    let b = v.as_bytes();
    let i = skip_ws(b, 0);
    if let Some(c) = scheme_at(b, i) {
        // _ADDR_SPEC
        let scheme = &v[i..c];
        let k = c + 1;
        let mut m = k;
        while m < b.len() && !matches!(b[m], b'@' | b';' | b',' | b' ' | b'\t') {
            m += 1;
        }
        let (userinfo, h) = if m < b.len() && b[m] == b'@' { (Some(&v[k..m]), m + 1) } else { (None, k) };
        let (host, e) = if h < b.len() && b[h] == b'[' {
            match v[h + 1..].find(']') {
                Some(q) => (&v[h..h + q + 2], h + q + 2),
                None => ("", h),
            }
        } else {
            let mut q = h;
            while q < b.len() && !matches!(b[q], b':' | b';' | b'?' | b',' | b' ' | b'\t' | b'[') {
                q += 1;
            }
            (&v[h..q], q)
        };
        let mut e2 = e;
        while e2 < b.len() && !matches!(b[e2], b';' | b',' | b' ' | b'\t') {
            e2 += 1;
        }
        let (user, host) = user_host(scheme, userinfo, host);
        return Ok(Addr { display: None, uri: Some(&v[i..e2]), user, host, params: upto_comma(&v[e2..]) });
    }
    // _LENIENT: `[ \t]*([^<>]*)<([^<>]*)>(.*)` - rare (stray quotes); left to Python.
    let mut j = i;
    while j < b.len() && b[j] != b'<' && b[j] != b'>' {
        j += 1;
    }
    if j < b.len() && b[j] == b'<' {
        let mut m = j + 1;
        while m < b.len() && b[m] != b'<' && b[m] != b'>' {
            m += 1;
        }
        if m < b.len() && b[m] == b'>' {
            return Err(());
        }
    }
    Ok(Addr { display: None, uri: None, user: None, host: None, params: "" })
}

type FromTo<'a> = (Option<Cow<'a, str>>, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// `_from_to` (regex `_FROM_TO`, else `_address(value, True)`).
fn from_to(v: &str) -> Result<FromTo<'_>, ()> {
    if let Some(na) = name_addr(v) {
        let tail = &v[na.end..];
        let tb = tail.as_bytes();
        let mut tag = None;
        let mut params = tail;
        let i = skip_ws(tb, 0);
        if i < tb.len() && tb[i] == b';' {
            let j = skip_ws(tb, i + 1);
            if tail[j..].starts_with("tag=") {
                let s = j + 4;
                let mut e = s;
                while e < tb.len() && !(is_py_space(tb[e]) || tb[e] == b';' || tb[e] == b',') {
                    e += 1;
                }
                if e > s {
                    tag = Some(&tail[s..e]);
                    params = &tail[e..];
                }
            }
        }
        if tag.is_none() && !params.is_empty() {
            tag = param(params, ";tag=", b"tag");
        }
        let (user, host) = user_host(na.scheme, na.userinfo, na.host);
        return Ok((display_of(&na), user, host, tag));
    }
    let a = address(v, true)?;
    let tag = if a.params.is_empty() { None } else { param(a.params, ";tag=", b"tag") };
    Ok((a.display, a.user, a.host, tag))
}

/// `_param(params, fast, regex)` with regex `;[ \t]*NAME[ \t]*=[ \t]*([^\s;,]+)` (IGNORECASE).
fn param<'a>(params: &'a str, fast: &str, name: &[u8]) -> Option<&'a str> {
    if let Some(i) = find_sub(params, fast) {
        let after = &params[i + fast.len()..];
        let val = py_strip(after.split(';').next().unwrap_or(""));
        if !val.is_empty() && !val.contains(' ') && !val.contains(',') {
            return Some(val);
        }
    }
    let b = params.as_bytes();
    for i in 0..b.len() {
        if b[i] != b';' {
            continue;
        }
        let mut j = skip_ws(b, i + 1);
        if j + name.len() <= b.len() && b[j..j + name.len()].eq_ignore_ascii_case(name) {
            j = skip_ws(b, j + name.len());
            if j < b.len() && b[j] == b'=' {
                j = skip_ws(b, j + 1);
                let s = j;
                while j < b.len() && !(is_py_space(b[j]) || b[j] == b';' || b[j] == b',') {
                    j += 1;
                }
                if j > s {
                    return Some(&params[s..j]);
                }
            }
        }
    }
    None
}

#[derive(Clone, Copy)]
enum Pre {
    /// `\bNAME`
    Boundary,
    /// `;[ \t]*NAME`
    Semi,
}

/// `_quoted_param` with the regexes `_USERNAME`, `_TEXT`, `_ICID`:
/// PRE NAME `[ \t]*=[ \t]*(?:"(quoted)"|(token))`, IGNORECASE, searched.
fn qparam<'a>(s: &'a str, pre: Pre, name: &[u8], escapes: bool, stop_semi: bool) -> Option<Cow<'a, str>> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        let mut j = match pre {
            Pre::Semi => {
                if b[i] != b';' {
                    continue;
                }
                skip_ws(b, i + 1)
            }
            Pre::Boundary => {
                if i > 0 && is_word(b[i - 1]) {
                    continue;
                }
                i
            }
        };
        if !(j + name.len() <= b.len() && b[j..j + name.len()].eq_ignore_ascii_case(name)) {
            continue;
        }
        j = skip_ws(b, j + name.len());
        if !(j < b.len() && b[j] == b'=') {
            continue;
        }
        j = skip_ws(b, j + 1);
        if j < b.len() && b[j] == b'"' {
            let end = if escapes { quoted_end(b, j) } else { s[j + 1..].find('"').map(|q| j + 1 + q) };
            if let Some(e) = end {
                return Some(unquote(&s[j + 1..e]));
            }
        }
        let st = j;
        while j < b.len() && !(is_py_space(b[j]) || b[j] == b',' || (stop_semi && b[j] == b';')) {
            j += 1;
        }
        if j > st {
            return Some(Cow::Borrowed(&s[st..j]));
        }
    }
    None
}

/// `_elements`: list elements, commas inside quotes and <...> kept (regex `_LIST_ELEMENT` findall).
fn elements(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if !value.contains('"') && !value.contains('<') {
        for p in value.split(',') {
            let p = py_strip(p);
            if !p.is_empty() {
                out.push(p);
            }
        }
        return out;
    }
    let b = value.as_bytes();
    let mut pos = 0;
    while pos < b.len() {
        let mut j = pos;
        while j < b.len() {
            match b[j] {
                b'"' => match quoted_end(b, j) {
                    Some(e) => j = e + 1,
                    None => break,
                },
                b'<' => {
                    let mut k = j + 1;
                    while k < b.len() && b[k] != b'<' && b[k] != b'>' {
                        k += 1;
                    }
                    if k < b.len() && b[k] == b'>' {
                        j = k + 1;
                    } else {
                        break;
                    }
                }
                b',' => break,
                _ => j += 1,
            }
        }
        if j > pos {
            let p = py_strip(&value[pos..j]);
            if !p.is_empty() {
                out.push(p);
            }
            pos = j;
        } else {
            pos += 1;
        }
    }
    out
}

/// `_small_int`.
fn small_int(s: &str, limit: u64) -> Option<u64> {
    let s = py_strip(s);
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = s.parse().ok()?;
    if n < limit {
        Some(n)
    } else {
        None
    }
}

/// `;[ \t]*NAME[ \t]*=[ \t]*([0-9]+)` (IGNORECASE) searched: the digits.
fn digits_param<'a>(s: &'a str, name: &[u8]) -> Option<&'a str> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] != b';' {
            continue;
        }
        let mut j = skip_ws(b, i + 1);
        if !(j + name.len() <= b.len() && b[j..j + name.len()].eq_ignore_ascii_case(name)) {
            continue;
        }
        j = skip_ws(b, j + name.len());
        if !(j < b.len() && b[j] == b'=') {
            continue;
        }
        j = skip_ws(b, j + 1);
        let st = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > st {
            return Some(&s[st..j]);
        }
    }
    None
}

/// `_reason_header`.
fn reason_header(value: &str) -> (Option<u64>, Option<Cow<'_, str>>) {
    let mut cause = None;
    let mut text = None;
    for element in elements(value) {
        let proto = py_strip(element.split(';').next().unwrap_or(""));
        let t = qparam(element, Pre::Semi, b"text", true, true);
        if proto.eq_ignore_ascii_case("Q.850") {
            if cause.is_none() {
                if let Some(d) = digits_param(element, b"cause") {
                    cause = small_int(d, 1 << 32);
                }
            }
            if t.is_some() {
                return (cause, t);
            }
        } else if text.is_none() && t.is_some() {
            text = t;
        }
    }
    (cause, text)
}

/// `_first_user` (`_address(value, False)[2]`).
fn first_user(value: &str) -> Result<Option<&str>, ()> {
    if value.is_empty() {
        return Ok(None);
    }
    Ok(address(value, false)?.user)
}

// --- SDP (`_sdp_fields`, regex `_SDP_FIELDS` on ASCII text) ---------------------------------------

const STATIC_PT: [(&str, &str); 17] = [
    ("0", "PCMU/8000"),
    ("3", "GSM/8000"),
    ("4", "G723/8000"),
    ("5", "DVI4/8000"),
    ("6", "DVI4/16000"),
    ("7", "LPC/8000"),
    ("8", "PCMA/8000"),
    ("9", "G722/8000"),
    ("10", "L16/44100/2"),
    ("11", "L16/44100"),
    ("12", "QCELP/8000"),
    ("13", "CN/8000"),
    ("14", "MPA/90000"),
    ("15", "G728/8000"),
    ("16", "DVI4/11025"),
    ("17", "DVI4/22050"),
    ("18", "G729/8000"),
];

struct Sdp<'a> {
    media_ip: Option<&'a str>,
    audio_port: Option<u32>,
    video_port: Option<u32>,
    codecs: Vec<&'a str>,
    direction: Option<&'a str>,
}

fn sdp_fields(body: &str) -> Sdp<'_> {
    let b = body.as_bytes();
    let mut session_c: Option<&str> = None;
    let mut audio_c: Option<&str> = None;
    let mut session_dir: Option<&str> = None;
    let mut audio_dir: Option<&str> = None;
    let mut audio_port: Option<u32> = None;
    let mut video_port: Option<u32> = None;
    let mut payloads: Vec<&str> = Vec::new();
    let mut rtpmap: Vec<(&str, &str)> = Vec::new();
    let mut section = 0u8;
    let mut s = 0usize; // start of a line (after "\n")
    loop {
        let l = &b[s..];
        if l.starts_with(b"c=IN IP") && l.len() > 7 && (l[7] == b'4' || l[7] == b'6') {
            // c=IN IP[46] +([^\s/]+)
            let mut j = 8;
            while j < l.len() && l[j] == b' ' {
                j += 1;
            }
            if j > 8 {
                let st = j;
                while j < l.len() && !(is_py_space(l[j]) || l[j] == b'/') {
                    j += 1;
                }
                if j > st {
                    let conn = &body[s + st..s + j];
                    if section == 0 {
                        session_c = Some(conn);
                    } else if section == 1 && audio_c.is_none() {
                        audio_c = Some(conn);
                    }
                }
            }
        } else if l.starts_with(b"m=") {
            // (m)=([A-Za-z]*)(?: +([0-9]+)[^ \r\n]*(?: +[^ \r\n]+([^\r\n]*))?)?
            let mut j = 2;
            while j < l.len() && l[j].is_ascii_alphabetic() {
                j += 1;
            }
            let media = &l[2..j];
            let mut port_s: &str = "";
            let mut fmts: &str = "";
            let mut k = j;
            while k < l.len() && l[k] == b' ' {
                k += 1;
            }
            if k > j {
                let ds = k;
                while k < l.len() && l[k].is_ascii_digit() {
                    k += 1;
                }
                if k > ds {
                    port_s = &body[s + ds..s + k];
                    while k < l.len() && !matches!(l[k], b' ' | b'\r' | b'\n') {
                        k += 1;
                    }
                    let sp = k;
                    while k < l.len() && l[k] == b' ' {
                        k += 1;
                    }
                    if k > sp {
                        let ps = k;
                        while k < l.len() && !matches!(l[k], b' ' | b'\r' | b'\n') {
                            k += 1;
                        }
                        if k > ps {
                            let fs = k;
                            while k < l.len() && !matches!(l[k], b'\r' | b'\n') {
                                k += 1;
                            }
                            fmts = &body[s + fs..s + k];
                        }
                    }
                }
            }
            let port = if !port_s.is_empty() && port_s.len() <= 5 {
                port_s.parse::<u32>().ok().filter(|p| *p < 65536)
            } else {
                None
            };
            if media == b"audio" && audio_port.is_none() && port.is_some() {
                section = 1;
                audio_port = port;
                payloads = fmts.split(|c: char| c.is_ascii() && is_py_space(c as u8)).filter(|x| !x.is_empty()).collect();
            } else {
                section = 2;
                if media == b"video" && video_port.is_none() {
                    video_port = port;
                }
            }
        } else if l.starts_with(b"a=rtpmap:") {
            // a=rtpmap: *([0-9]+) +(\S+)
            let mut j = 9;
            while j < l.len() && l[j] == b' ' {
                j += 1;
            }
            let ds = j;
            while j < l.len() && l[j].is_ascii_digit() {
                j += 1;
            }
            if j > ds {
                let de = j;
                while j < l.len() && l[j] == b' ' {
                    j += 1;
                }
                if j > de {
                    let es = j;
                    while j < l.len() && !is_py_space(l[j]) {
                        j += 1;
                    }
                    if j > es {
                        let pt = &body[s + ds..s + de];
                        let enc = &body[s + es..s + j];
                        if section == 1 && !rtpmap.iter().any(|(p, _)| *p == pt) {
                            rtpmap.push((pt, enc));
                        }
                    }
                }
            }
        } else if l.starts_with(b"a=") {
            // a=(sendrecv|sendonly|recvonly|inactive)\b
            for word in ["sendrecv", "sendonly", "recvonly", "inactive"] {
                let w = word.as_bytes();
                if l[2..].starts_with(w) {
                    let after = 2 + w.len();
                    if after >= l.len() || !is_word(l[after]) {
                        if section == 0 {
                            session_dir = Some(word);
                        } else if section == 1 {
                            audio_dir = Some(word);
                        }
                    }
                    break;
                }
            }
        }
        match b[s..].iter().position(|&c| c == b'\n') {
            Some(p) => s = s + p + 1,
            None => break,
        }
    }
    let codecs = payloads
        .iter()
        .map(|pt| {
            if let Some((_, enc)) = rtpmap.iter().find(|(p, _)| p == pt) {
                *enc
            } else if let Some((_, name)) = STATIC_PT.iter().find(|(p, _)| p == pt) {
                *name
            } else {
                *pt
            }
        })
        .collect();
    Sdp { media_ip: audio_c.or(session_c), audio_port, video_port, codecs, direction: audio_dir.or(session_dir) }
}

// --- headers -------------------------------------------------------------------------------------

fn compact(c: u8) -> Option<&'static str> {
    Some(match c {
        b'a' => "accept-contact",
        b'b' => "referred-by",
        b'c' => "content-type",
        b'd' => "request-disposition",
        b'e' => "content-encoding",
        b'f' => "from",
        b'i' => "call-id",
        b'j' => "reject-contact",
        b'k' => "supported",
        b'l' => "content-length",
        b'm' => "contact",
        b'n' => "identity-info",
        b'o' => "event",
        b'r' => "refer-to",
        b's' => "subject",
        b't' => "to",
        b'u' => "allow-events",
        b'v' => "via",
        b'x' => "session-expires",
        b'y' => "identity",
        _ => return None,
    })
}

const COMBINED: [&str; 9] = [
    "via",
    "contact",
    "route",
    "record-route",
    "reason",
    "history-info",
    "p-asserted-identity",
    "remote-party-id",
    "diversion",
];
const SINGLE: [&str; 6] = ["call-id", "cseq", "from", "to", "max-forwards", "content-length"];

/// Canonical header key of a stripped name (`_CANON` / `_canonical`): lower case, compact forms
/// expanded; None for an empty name or one with inner LWS (`malformed_header_line`).
fn canonical(name: &str) -> Option<Cow<'_, str>> {
    let nb = name.as_bytes();
    if nb.is_empty() || nb.iter().any(|&c| is_sp_tab(c)) {
        return None;
    }
    if nb.len() == 1 {
        if let Some(full) = compact(nb[0].to_ascii_lowercase()) {
            return Some(Cow::Borrowed(full));
        }
    }
    if nb.len() <= 24 {
        let mut buf = [0u8; 24];
        for (d, c) in buf.iter_mut().zip(nb) {
            *d = c.to_ascii_lowercase();
        }
        if let Some(k) = known(&buf[..nb.len()]) {
            return Some(Cow::Borrowed(k));
        }
    }
    if nb.iter().any(|c| c.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// Usual header names (lower case) as static strings (their Python keys are interned).
fn known(lower: &[u8]) -> Option<&'static str> {
    Some(match lower {
        b"accept" => "accept",
        b"accept-contact" => "accept-contact",
        b"accept-encoding" => "accept-encoding",
        b"accept-language" => "accept-language",
        b"alert-info" => "alert-info",
        b"allow" => "allow",
        b"allow-events" => "allow-events",
        b"authentication-info" => "authentication-info",
        b"authorization" => "authorization",
        b"call-id" => "call-id",
        b"call-info" => "call-info",
        b"contact" => "contact",
        b"content-disposition" => "content-disposition",
        b"content-encoding" => "content-encoding",
        b"content-language" => "content-language",
        b"content-length" => "content-length",
        b"content-type" => "content-type",
        b"cseq" => "cseq",
        b"date" => "date",
        b"diversion" => "diversion",
        b"error-info" => "error-info",
        b"event" => "event",
        b"expires" => "expires",
        b"from" => "from",
        b"history-info" => "history-info",
        b"identity" => "identity",
        b"identity-info" => "identity-info",
        b"in-reply-to" => "in-reply-to",
        b"max-forwards" => "max-forwards",
        b"min-expires" => "min-expires",
        b"min-se" => "min-se",
        b"mime-version" => "mime-version",
        b"organization" => "organization",
        b"p-access-network-info" => "p-access-network-info",
        b"p-asserted-identity" => "p-asserted-identity",
        b"p-called-party-id" => "p-called-party-id",
        b"p-charging-vector" => "p-charging-vector",
        b"p-early-media" => "p-early-media",
        b"p-preferred-identity" => "p-preferred-identity",
        b"path" => "path",
        b"priority" => "priority",
        b"privacy" => "privacy",
        b"proxy-authenticate" => "proxy-authenticate",
        b"proxy-authorization" => "proxy-authorization",
        b"proxy-require" => "proxy-require",
        b"rack" => "rack",
        b"reason" => "reason",
        b"record-route" => "record-route",
        b"refer-to" => "refer-to",
        b"referred-by" => "referred-by",
        b"remote-party-id" => "remote-party-id",
        b"replaces" => "replaces",
        b"reply-to" => "reply-to",
        b"require" => "require",
        b"retry-after" => "retry-after",
        b"route" => "route",
        b"rseq" => "rseq",
        b"server" => "server",
        b"session-expires" => "session-expires",
        b"session-id" => "session-id",
        b"subject" => "subject",
        b"subscription-state" => "subscription-state",
        b"supported" => "supported",
        b"timestamp" => "timestamp",
        b"to" => "to",
        b"unsupported" => "unsupported",
        b"user-agent" => "user-agent",
        b"via" => "via",
        b"warning" => "warning",
        b"www-authenticate" => "www-authenticate",
        b"x-cid" => "x-cid",
        b"x-call-id" => "x-call-id",
        b"reject-contact" => "reject-contact",
        b"request-disposition" => "request-disposition",
        b"x-covert-data" => "x-covert-data",
        _ => return None,
    })
}

/// The interned Python string of a usual header key, else a new one.
fn py_key<'py>(py: Python<'py>, key: &str) -> Bound<'py, PyString> {
    match key {
        "accept" => intern!(py, "accept").clone(),
        "accept-contact" => intern!(py, "accept-contact").clone(),
        "accept-encoding" => intern!(py, "accept-encoding").clone(),
        "accept-language" => intern!(py, "accept-language").clone(),
        "alert-info" => intern!(py, "alert-info").clone(),
        "allow" => intern!(py, "allow").clone(),
        "allow-events" => intern!(py, "allow-events").clone(),
        "authentication-info" => intern!(py, "authentication-info").clone(),
        "authorization" => intern!(py, "authorization").clone(),
        "call-id" => intern!(py, "call-id").clone(),
        "call-info" => intern!(py, "call-info").clone(),
        "contact" => intern!(py, "contact").clone(),
        "content-disposition" => intern!(py, "content-disposition").clone(),
        "content-encoding" => intern!(py, "content-encoding").clone(),
        "content-language" => intern!(py, "content-language").clone(),
        "content-length" => intern!(py, "content-length").clone(),
        "content-type" => intern!(py, "content-type").clone(),
        "cseq" => intern!(py, "cseq").clone(),
        "date" => intern!(py, "date").clone(),
        "diversion" => intern!(py, "diversion").clone(),
        "error-info" => intern!(py, "error-info").clone(),
        "event" => intern!(py, "event").clone(),
        "expires" => intern!(py, "expires").clone(),
        "from" => intern!(py, "from").clone(),
        "history-info" => intern!(py, "history-info").clone(),
        "identity" => intern!(py, "identity").clone(),
        "identity-info" => intern!(py, "identity-info").clone(),
        "in-reply-to" => intern!(py, "in-reply-to").clone(),
        "max-forwards" => intern!(py, "max-forwards").clone(),
        "min-expires" => intern!(py, "min-expires").clone(),
        "min-se" => intern!(py, "min-se").clone(),
        "mime-version" => intern!(py, "mime-version").clone(),
        "organization" => intern!(py, "organization").clone(),
        "p-access-network-info" => intern!(py, "p-access-network-info").clone(),
        "p-asserted-identity" => intern!(py, "p-asserted-identity").clone(),
        "p-called-party-id" => intern!(py, "p-called-party-id").clone(),
        "p-charging-vector" => intern!(py, "p-charging-vector").clone(),
        "p-early-media" => intern!(py, "p-early-media").clone(),
        "p-preferred-identity" => intern!(py, "p-preferred-identity").clone(),
        "path" => intern!(py, "path").clone(),
        "priority" => intern!(py, "priority").clone(),
        "privacy" => intern!(py, "privacy").clone(),
        "proxy-authenticate" => intern!(py, "proxy-authenticate").clone(),
        "proxy-authorization" => intern!(py, "proxy-authorization").clone(),
        "proxy-require" => intern!(py, "proxy-require").clone(),
        "rack" => intern!(py, "rack").clone(),
        "reason" => intern!(py, "reason").clone(),
        "record-route" => intern!(py, "record-route").clone(),
        "refer-to" => intern!(py, "refer-to").clone(),
        "referred-by" => intern!(py, "referred-by").clone(),
        "remote-party-id" => intern!(py, "remote-party-id").clone(),
        "replaces" => intern!(py, "replaces").clone(),
        "reply-to" => intern!(py, "reply-to").clone(),
        "require" => intern!(py, "require").clone(),
        "retry-after" => intern!(py, "retry-after").clone(),
        "route" => intern!(py, "route").clone(),
        "rseq" => intern!(py, "rseq").clone(),
        "server" => intern!(py, "server").clone(),
        "session-expires" => intern!(py, "session-expires").clone(),
        "session-id" => intern!(py, "session-id").clone(),
        "subject" => intern!(py, "subject").clone(),
        "subscription-state" => intern!(py, "subscription-state").clone(),
        "supported" => intern!(py, "supported").clone(),
        "timestamp" => intern!(py, "timestamp").clone(),
        "to" => intern!(py, "to").clone(),
        "unsupported" => intern!(py, "unsupported").clone(),
        "user-agent" => intern!(py, "user-agent").clone(),
        "via" => intern!(py, "via").clone(),
        "warning" => intern!(py, "warning").clone(),
        "www-authenticate" => intern!(py, "www-authenticate").clone(),
        "x-cid" => intern!(py, "x-cid").clone(),
        "x-call-id" => intern!(py, "x-call-id").clone(),
        "reject-contact" => intern!(py, "reject-contact").clone(),
        "request-disposition" => intern!(py, "request-disposition").clone(),
        "x-covert-data" => intern!(py, "x-covert-data").clone(),
        _ => PyString::new(py, key),
    }
}

struct Headers<'a> {
    items: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Headers<'a> {
    fn get(&self, key: &str) -> Option<&str> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }
}

fn add_note(notes: &mut Vec<&'static str>, note: &'static str) {
    if !notes.contains(&note) {
        notes.push(note);
    }
}

/// Everything `_parse` computes, for the native-handled messages.
struct Parsed<'a> {
    is_request: bool,
    call_id: &'a str,
    cseq_num: u64,
    cseq_method: &'a str,
    notes: Vec<&'static str>,
    method: Option<&'a str>,
    ruri: Option<&'a str>,
    ruri_user: Option<&'a str>,
    ruri_host: Option<&'a str>,
    status_code: Option<u32>,
    reason: Option<&'a str>,
    from: FromTo<'a>,
    to: FromTo<'a>,
    pai_user: Option<&'a str>,
    diversion_user: Option<&'a str>,
    contact: Option<&'a str>,
    contact_expires: Option<u64>,
    user_agent: Option<&'a str>,
    server: Option<&'a str>,
    via_branch: Option<&'a str>,
    via_count: usize,
    max_forwards: Option<u64>,
    expires: Option<u64>,
    auth_user: Option<Cow<'a, str>>,
    q850_cause: Option<u64>,
    reason_text: Option<Cow<'a, str>>,
    correlation_id: Option<Cow<'a, str>>,
    content_type: Option<String>,
    sdp: Option<Sdp<'a>>,
    body: (usize, usize),
    size: usize,
    trailing: usize,
}

/// `_start_line` fast path only (anything else -> None).
fn start_line<'a>(line: &'a str, p: &mut Parsed<'a>) -> Option<()> {
    if let Some(head) = line.strip_suffix(" SIP/2.0") {
        let (method, ruri) = match head.find(' ') {
            Some(i) => (&head[..i], &head[i + 1..]),
            None => (head, ""),
        };
        let rb = ruri.as_bytes();
        let mb = method.as_bytes();
        if !rb.is_empty()
            && rb[0].is_ascii_alphabetic()
            && !ruri.contains(' ')
            && ruri.contains(':')
            && !mb.is_empty()
            && mb.iter().all(|&c| c.is_ascii_alphanumeric() || b".!%*_+`'~-".contains(&c))
        {
            p.method = Some(method);
            p.ruri = Some(ruri);
            let (u, h) = uri_parts(ruri);
            p.ruri_user = u;
            p.ruri_host = h;
            return Some(());
        }
        return None;
    }
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let rb = rest.as_bytes();
        if rb.len() >= 3 && rb[..3].iter().all(|c| c.is_ascii_digit()) && (rb.len() == 3 || rb[3] == b' ') {
            let code = &rest[..3];
            if ("100"..="699").contains(&code) {
                p.is_request = false;
                p.status_code = code.parse().ok();
                p.reason = Some(if rb.len() > 3 { py_strip(&rest[4..]) } else { "" });
                return Some(());
            }
        }
    }
    None
}

struct Head<'a> {
    line: &'a str,
    head_end: usize,
    headers: Headers<'a>,
    notes: Vec<&'static str>,
}

/// Header block checks and the header-field loop of `_parse`, in one pass over the bytes.
fn scan(data: &[u8]) -> Option<Head<'_>> {
    let n = data.len();
    if n == 0 || matches!(data[0], b'\r' | b'\n' | b' ' | b'\t') {
        return None;
    }
    // Up to the first CRLF CRLF: printable ASCII + HTAB (not in the start line), CR only in CRLF,
    // LF only after CR. Each header line is recorded as (start, first colon, end).
    let mut lines: Vec<(usize, usize, usize)> = Vec::with_capacity(32);
    let mut first_eol = 0usize;
    let mut line_start = 0usize;
    let mut colon = usize::MAX;
    let mut i = 0usize;
    let head_end;
    loop {
        if i >= n {
            return None; // no blank line (or a bare-LF message)
        }
        let c = data[i];
        if c == b'\r' {
            if i + 1 >= n || data[i + 1] != b'\n' {
                return None;
            }
            if line_start == 0 {
                first_eol = i;
            } else {
                if colon == usize::MAX {
                    return None; // malformed_header_line
                }
                lines.push((line_start, colon, i));
            }
            if i + 3 < n && data[i + 2] == b'\r' && data[i + 3] == b'\n' {
                head_end = i;
                break;
            }
            i += 2;
            line_start = i;
            colon = usize::MAX;
            if i < n && is_sp_tab(data[i]) {
                return None; // folded line
            }
            continue;
        }
        if c == b':' {
            if colon == usize::MAX {
                colon = i;
            }
        } else if !(0x20..0x7f).contains(&c) && !(c == b'\t' && line_start != 0) {
            return None;
        }
        i += 1;
    }
    if head_end > MAX_HEADER_BLOCK || line_start == 0 {
        return None; // too long, or no header lines at all (an error in Python)
    }
    if head_end - (first_eol + 2) > MAX_HEADER_FIELD {
        return None;
    }
    // ASCII only (checked above), hence valid UTF-8
    let text = std::str::from_utf8(&data[..head_end]).ok()?;
    let line = &text[..first_eol];
    let mut items: Vec<(Cow<str>, Cow<str>)> = Vec::with_capacity(lines.len());
    let mut notes = Vec::new();
    for &(ls, colon, le) in &lines {
        let name = py_strip(&text[ls..colon]);
        let key = canonical(name)?; // None: malformed_header_line
        let value = py_strip(&text[colon + 1..le]);
        match items.iter_mut().find(|(k, _)| *k == key) {
            None => items.push((key, Cow::Borrowed(value))),
            Some((k, old)) => {
                // CPython: strings of length <= 1 are singletons, so `old is value` holds for them
                if old.len() <= 1 && old.as_ref() == value {
                    continue;
                }
                let k: &str = k.as_ref();
                if COMBINED.contains(&k) {
                    if old.is_empty() {
                        *old = Cow::Borrowed(value);
                    } else {
                        let joined = format!("{}, {}", old, value);
                        *old = Cow::Owned(joined);
                    }
                } else if SINGLE.contains(&k) {
                    if k == "content-length" {
                        if old.as_ref() != value {
                            add_note(&mut notes, "conflicting_content_length");
                        }
                    } else {
                        add_note(&mut notes, "duplicate_header");
                    }
                }
            }
        }
    }
    Some(Head { line, head_end, headers: Headers { items }, notes })
}

/// Naive substring search (short needles in short strings: cheaper than the two-way searcher).
fn find_sub(h: &str, needle: &str) -> Option<usize> {
    let (h, nd) = (h.as_bytes(), needle.as_bytes());
    if nd.is_empty() || h.len() < nd.len() {
        return None;
    }
    let first = nd[0];
    (0..=h.len() - nd.len()).find(|&i| h[i] == first && &h[i..i + nd.len()] == nd)
}

/// The part of `_parse` after the header loop (values borrow from the input and from `head`).
fn fill<'h>(data: &'h [u8], head: &'h Head<'h>, corr: &[String]) -> Option<Parsed<'h>> {
    let headers = &head.headers;
    let head_end = head.head_end;
    let mut parsed = Parsed {
        is_request: true,
        call_id: "",
        cseq_num: 0,
        cseq_method: "",
        notes: head.notes.clone(),
        method: None,
        ruri: None,
        ruri_user: None,
        ruri_host: None,
        status_code: None,
        reason: None,
        from: (None, None, None, None),
        to: (None, None, None, None),
        pai_user: None,
        diversion_user: None,
        contact: None,
        contact_expires: None,
        user_agent: None,
        server: None,
        via_branch: None,
        via_count: 0,
        max_forwards: None,
        expires: None,
        auth_user: None,
        q850_cause: None,
        reason_text: None,
        correlation_id: None,
        content_type: None,
        sdp: None,
        body: (0, 0),
        size: 0,
        trailing: 0,
    };
    start_line(head.line, &mut parsed)?;
    let p = &mut parsed;
    let call_id = get_borrowed(headers, "call-id")?;
    if call_id.is_empty() {
        return None;
    }
    p.call_id = call_id;
    let cseq = get_borrowed(headers, "cseq")?;
    let mut parts = cseq.split(|c: char| c.is_ascii() && is_py_space(c as u8)).filter(|x| !x.is_empty());
    let num_s = parts.next()?;
    let meth = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    if num_s.len() > 10 || !num_s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let num: u64 = num_s.parse().ok()?;
    if num >= 1u64 << 32 {
        return None;
    }
    p.cseq_num = num;
    p.cseq_method = meth;
    if p.is_request && Some(meth) != p.method {
        p.notes.push("cseq_method_mismatch");
    }

    let n = data.len();
    let body_start = head_end + 4;
    let rest_len = n - body_start;
    let body_len;
    match get_borrowed(headers, "content-length") {
        None => {
            body_len = rest_len;
            p.notes.push("missing_content_length");
        }
        Some(length) => {
            if length.is_empty() || length.len() > 9 || !length.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let l: usize = length.parse().ok()?;
            if l > rest_len {
                return None;
            }
            if l < rest_len {
                p.trailing = rest_len - l;
                p.notes.push("trailing_bytes");
            }
            body_len = l;
        }
    }
    p.body = (body_start, body_start + body_len);
    p.size = body_start + body_len;

    // _addresses
    match get_borrowed(headers, "from") {
        None => p.notes.push("missing_from"),
        Some(v) => p.from = from_to(v).ok()?,
    }
    match get_borrowed(headers, "to") {
        None => p.notes.push("missing_to"),
        Some(v) => p.to = from_to(v).ok()?,
    }
    if let Some(v) = get_borrowed_list(headers, "contact")? {
        if !v.is_empty() {
            if v == "*" {
                p.contact = Some("*");
            } else {
                let a = address(v, false).ok()?;
                p.contact = a.uri;
                if !a.params.is_empty() {
                    if let Some(d) = digits_param(a.params, b"expires") {
                        p.contact_expires = small_int(d, 1 << 32);
                    }
                }
            }
        }
    }
    let pai = match get_borrowed_list(headers, "p-asserted-identity")? {
        Some(v) if !v.is_empty() => Some(v),
        _ => get_borrowed_list(headers, "remote-party-id")?,
    };
    if let Some(v) = pai {
        if !v.is_empty() {
            p.pai_user = first_user(v).ok()?;
        }
    }
    let div = get_borrowed_list(headers, "diversion")?;
    let hist = get_borrowed_list(headers, "history-info")?;
    if div.is_some() || hist.is_some() {
        p.diversion_user = match (div, hist) {
            (Some(d), _) if !d.is_empty() => first_user(d).ok()?,
            (_, Some(h)) if !h.is_empty() => {
                let entries = elements(h);
                if entries.len() >= 2 {
                    first_user(entries[0]).ok()?
                } else {
                    None
                }
            }
            _ => None,
        };
    }

    // _other_headers
    match get_borrowed_list(headers, "via")? {
        None => p.notes.push("missing_via"),
        Some(vias) => {
            let top;
            if vias.contains('"') {
                let el = elements(vias);
                p.via_count = el.len();
                top = el.first().copied().unwrap_or("");
            } else {
                p.via_count = vias.matches(',').count() + 1;
                top = vias.split(',').next().unwrap_or("");
            }
            p.via_branch = param(top, ";branch=", b"branch");
        }
    }
    if let Some(v) = get_borrowed(headers, "max-forwards") {
        p.max_forwards = small_int(v, 1 << 31);
        if p.max_forwards.map_or(true, |mf| mf > 255) {
            p.notes.push("bad_max_forwards");
        }
    }
    if let Some(v) = get_borrowed(headers, "expires") {
        p.expires = small_int(v, 1 << 32);
        if p.expires.is_none() {
            p.notes.push("bad_expires");
        }
    }
    p.user_agent = get_borrowed(headers, "user-agent");
    p.server = get_borrowed(headers, "server");
    let auth = match get_borrowed(headers, "authorization") {
        Some(v) if !v.is_empty() => Some(v),
        _ => get_borrowed(headers, "proxy-authorization"),
    };
    if let Some(v) = auth {
        if !v.is_empty() {
            p.auth_user = qparam(v, Pre::Boundary, b"username", true, false);
        }
    }
    if let Some(v) = get_borrowed_list(headers, "reason")? {
        if !v.is_empty() {
            let (c, t) = reason_header(v);
            p.q850_cause = c;
            p.reason_text = t;
        }
    }

    // correlation
    for key in corr {
        let Some(value) = get_borrowed_list(headers, key)? else { continue };
        if value.is_empty() {
            continue;
        }
        let cid: Option<Cow<str>> = if key == "p-charging-vector" {
            qparam(value, Pre::Boundary, b"icid-value", false, true)
        } else {
            Some(Cow::Borrowed(py_strip(value.split(';').next().unwrap_or(""))))
        };
        if let Some(c) = cid {
            if !c.is_empty() {
                p.correlation_id = Some(c);
                break;
            }
        }
    }

    if let Some(ctype) = get_borrowed(headers, "content-type") {
        if !ctype.is_empty() {
            let media_type = py_strip(ctype.split(';').next().unwrap_or("")).to_ascii_lowercase();
            if body_len > 0 {
                if media_type == "application/sdp" {
                    let body = &data[body_start..body_start + body_len];
                    if !body.is_ascii() {
                        return None;
                    }
                    // ASCII, hence UTF-8
                    let text = std::str::from_utf8(body).ok()?;
                    p.sdp = Some(sdp_fields(text));
                } else if media_type.starts_with("multipart/") {
                    p.sdp = multipart_sdp(&data[body_start..body_start + body_len], ctype, 0).ok()?;
                }
            }
            p.content_type = Some(media_type);
        }
    }
    Some(parsed)
}

/// Position of `needle` in `hay` from `start` (`bytes.find`).
fn find_bytes(hay: &[u8], needle: &[u8], start: usize) -> Option<usize> {
    if start > hay.len() {
        return None;
    }
    if needle.is_empty() {
        return Some(start);
    }
    hay[start..].windows(needle.len()).position(|w| w == needle).map(|i| i + start)
}

/// `_quoted_param(_BOUNDARY, content_type)`, regex `;[ \t]*boundary[ \t]*=[ \t]*(?:"([^"]+)"|([^\s;]+))`,
/// IGNORECASE, searched: the quoted value unescaped, else the token (which may start with a quote).
fn boundary_param(ctype: &str) -> Option<Cow<'_, str>> {
    let b = ctype.as_bytes();
    for i in 0..b.len() {
        if b[i] != b';' {
            continue;
        }
        let mut j = skip_ws(b, i + 1);
        if !(j + 8 <= b.len() && b[j..j + 8].eq_ignore_ascii_case(b"boundary")) {
            continue;
        }
        j = skip_ws(b, j + 8);
        if !(j < b.len() && b[j] == b'=') {
            continue;
        }
        j = skip_ws(b, j + 1);
        if j < b.len() && b[j] == b'"' {
            if let Some(q) = ctype[j + 1..].find('"') {
                if q > 0 {
                    return Some(unquote(&ctype[j + 1..j + 1 + q]));
                }
            }
        }
        let st = j;
        while j < b.len() && !(is_py_space(b[j]) || b[j] == b';') {
            j += 1;
        }
        if j > st {
            return Some(Cow::Borrowed(&ctype[st..j]));
        }
    }
    None
}

/// `_header_end(part, 0)`: (index of the blank line ending the headers, its length).
fn part_header_end(data: &[u8]) -> Option<(usize, usize)> {
    let eol = data.iter().position(|&c| c == b'\n')?;
    if eol > 0 && data[eol - 1] == b'\r' {
        if let Some(end) = find_bytes(data, b"\r\n\r\n", eol - 1) {
            return Some((end, 4));
        }
    }
    find_bytes(data, b"\n\n", eol).map(|end| (end, 2))
}

/// Regexes `_PART_SDP` / `_PART_MULTIPART`: `^(?:content-type|c)[ \t]*:[ \t]*` then `prefix`, IGNORECASE,
/// MULTILINE, searched in a part's headers; the index just after the colon's blanks of the first match.
fn part_content_type(headers: &[u8], prefix: &[u8]) -> Option<usize> {
    let mut line = 0;
    loop {
        for name in [&b"content-type"[..], &b"c"[..]] {
            let mut j = line;
            if j + name.len() <= headers.len() && headers[j..j + name.len()].eq_ignore_ascii_case(name) {
                j = skip_ws(headers, j + name.len());
                if j < headers.len() && headers[j] == b':' {
                    j = skip_ws(headers, j + 1);
                    if j + prefix.len() <= headers.len() && headers[j..j + prefix.len()].eq_ignore_ascii_case(prefix) {
                        return Some(j);
                    }
                }
            }
        }
        line += headers[line..].iter().position(|&c| c == b'\n')? + 1;
    }
}

/// `_multipart_sdp`: the SDP summary of the first application/sdp part of a multipart body (one level of
/// nesting). `Err` declines (a part that is not ASCII; Python decodes it as latin-1).
fn multipart_sdp<'a>(body: &'a [u8], ctype: &str, depth: u32) -> Result<Option<Sdp<'a>>, ()> {
    let Some(boundary) = boundary_param(ctype) else { return Ok(None) };
    if boundary.is_empty() || depth > 1 {
        return Ok(None);
    }
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary.as_bytes());
    let mut pos = find_bytes(body, &delim, 0);
    while let Some(at) = pos {
        let start = at + delim.len();
        if body.get(start..start + 2) == Some(&b"--"[..]) {
            break;
        }
        let nxt = find_bytes(body, &delim, start);
        let part = &body[start.min(body.len())..nxt.unwrap_or(body.len())];
        if let Some((he, sep)) = part_header_end(part) {
            let (headers, mut content) = (&part[..he], &part[he + sep..]);
            if content.ends_with(b"\r\n") {
                content = &content[..content.len() - 2];
            }
            if part_content_type(headers, b"application/sdp").is_some() {
                if !content.is_ascii() {
                    return Err(());
                }
                return Ok(Some(sdp_fields(std::str::from_utf8(content).map_err(|_| ())?)));
            }
            if let Some(j) = part_content_type(headers, b"multipart/") {
                let end = headers[j..].iter().position(|&c| c == b'\r' || c == b'\n').map_or(headers.len(), |e| j + e);
                let nested = &headers[j..end];
                if !nested.is_ascii() {
                    return Err(());
                }
                if let Some(found) = multipart_sdp(content, std::str::from_utf8(nested).map_err(|_| ())?, depth + 1)? {
                    return Ok(Some(found));
                }
            }
        }
        pos = nxt;
    }
    Ok(None)
}

fn get_borrowed<'h>(headers: &'h Headers<'h>, key: &str) -> Option<&'h str> {
    headers.get(key)
}

/// Same as `get_borrowed`, wrapped for the `?` of list headers (kept for readability).
fn get_borrowed_list<'h>(headers: &'h Headers<'h>, key: &str) -> Option<Option<&'h str>> {
    Some(headers.get(key))
}

// --- Python binding ------------------------------------------------------------------------------

/// Correlation header name -> header key as `_correlation` computes it
/// (`_CANON.get(name) or name.strip().lower()`); None (decline) for non-ASCII names.
fn correlation_key(name: &str) -> Option<String> {
    if !name.is_ascii() {
        return None;
    }
    let b = name.as_bytes();
    if b.len() == 1 {
        if let Some(full) = compact(b[0].to_ascii_lowercase()) {
            return Some(full.to_string());
        }
    }
    Some(py_strip(name).to_ascii_lowercase())
}

/// The header keys of `correlation_headers` (a sequence of names, or None); None: decline.
fn correlation_keys(correlation_headers: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let mut corr: Vec<String> = Vec::new();
    if let Some(names) = correlation_headers {
        for item in names.try_iter()? {
            let name: String = item?.extract()?;
            match correlation_key(&name) {
                Some(k) => corr.push(k),
                None => return Ok(None),
            }
        }
    }
    Ok(Some(corr))
}

fn opt_str<'py>(py: Python<'py>, s: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
    s.into_bound_py_any(py)
}

fn opt_cow<'py>(py: Python<'py>, s: &Option<Cow<'_, str>>) -> PyResult<Bound<'py, PyAny>> {
    s.as_deref().into_bound_py_any(py)
}

/// Parse one SIP message; the `ParsedSip` field values after `raw` as a tuple (the `sdp` field is
/// `(media_ip, audio_port, video_port, codecs, direction)` or None), or None when the message is
/// not one this core reproduces exactly (the caller then uses the Python parser).
#[pyfunction]
#[pyo3(signature = (data, correlation_headers = None))]
fn parse<'py>(
    py: Python<'py>,
    data: &[u8],
    correlation_headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(corr) = correlation_keys(correlation_headers)? else { return Ok(None) };
    let Some(head) = scan(data) else { return Ok(None) };
    let Some(p) = fill(data, &head, &corr) else { return Ok(None) };

    // the dict's value objects are reused for the fields that are whole header values (as in Python)
    let headers = PyDict::new(py);
    let none = py.None().into_bound(py);
    let (mut call_id, mut user_agent, mut server) = (none.clone(), none.clone(), none.clone());
    for (k, v) in &head.headers.items {
        let key: &str = k.as_ref();
        let value = PyString::new(py, v.as_ref());
        match key {
            "call-id" => call_id = value.clone().into_any(),
            "user-agent" => user_agent = value.clone().into_any(),
            "server" => server = value.clone().into_any(),
            _ => {}
        }
        headers.set_item(py_key(py, key), value)?;
    }
    let notes = PyList::new(py, &p.notes)?;
    let sdp = sdp_tuple(py, &p.sdp)?;
    let body: &[u8] = &data[p.body.0..p.body.1];
    let items: [Bound<'py, PyAny>; 39] = [
        p.is_request.into_bound_py_any(py)?,
        call_id,
        p.cseq_num.into_bound_py_any(py)?,
        p.cseq_method.into_bound_py_any(py)?,
        headers.into_any(),
        notes.into_any(),
        opt_str(py, p.method)?,
        opt_str(py, p.ruri)?,
        opt_str(py, p.ruri_user)?,
        opt_str(py, p.ruri_host)?,
        p.status_code.into_bound_py_any(py)?,
        opt_str(py, p.reason)?,
        opt_cow(py, &p.from.0)?,
        opt_str(py, p.from.1)?,
        opt_str(py, p.from.2)?,
        opt_str(py, p.from.3)?,
        opt_cow(py, &p.to.0)?,
        opt_str(py, p.to.1)?,
        opt_str(py, p.to.2)?,
        opt_str(py, p.to.3)?,
        opt_str(py, p.pai_user)?,
        opt_str(py, p.diversion_user)?,
        opt_str(py, p.contact)?,
        p.contact_expires.into_bound_py_any(py)?,
        user_agent,
        server,
        opt_str(py, p.via_branch)?,
        p.via_count.into_bound_py_any(py)?,
        p.max_forwards.into_bound_py_any(py)?,
        p.expires.into_bound_py_any(py)?,
        opt_cow(py, &p.auth_user)?,
        p.q850_cause.into_bound_py_any(py)?,
        opt_cow(py, &p.reason_text)?,
        opt_cow(py, &p.correlation_id)?,
        p.content_type.as_deref().into_bound_py_any(py)?,
        sdp,
        pyo3::types::PyBytes::new(py, body).into_any(),
        p.size.into_bound_py_any(py)?,
        p.trailing.into_bound_py_any(py)?,
    ];
    Ok(Some(PyTuple::new(py, items)?))
}

/// `(media_ip, audio_port, video_port, codecs, direction)` of an SDP summary, or None.
fn sdp_tuple<'py>(py: Python<'py>, sdp: &Option<Sdp<'_>>) -> PyResult<Bound<'py, PyAny>> {
    match sdp {
        None => Ok(py.None().into_bound(py)),
        Some(s) => {
            (s.media_ip, s.audio_port, s.video_port, PyList::new(py, &s.codecs)?, s.direction).into_bound_py_any(py)
        }
    }
}

/// `sipscope.records.message_id`: BLAKE2b with a 16-byte digest of
/// `f"{node}|{ts:.6f}|{src_ip}|{src_port}|{dst_ip}|{dst_port}|"` then the raw bytes, in lower-case hex.
/// Rust's `{:.6}` gives Python's `.6f` text for every finite float (the exact value rounded, ties to
/// even); None for NaN and the infinities, which the two spell differently.
fn message_id(node: &str, ts: f64, src_ip: &str, src_port: i64, dst_ip: &str, dst_port: i64, raw: &[u8]) -> Option<String> {
    use std::fmt::Write;
    if !ts.is_finite() {
        return None;
    }
    let mut prefix = String::with_capacity(node.len() + src_ip.len() + dst_ip.len() + 48);
    write!(prefix, "{node}|{ts:.6}|{src_ip}|{src_port}|{dst_ip}|{dst_port}|").ok()?;
    let mut state = blake2b_simd::Params::new().hash_length(16).to_state();
    state.update(prefix.as_bytes());
    state.update(raw);
    Some(state.finalize().to_hex().to_string())
}

/// `bytes.decode("utf-8", "replace")` (CPython's own decoder, so invalid bytes are replaced alike).
fn decode_utf8_replace<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the pointer and length describe `data`, alive for the call; a NULL result is an error set
    unsafe {
        let obj = pyo3::ffi::PyUnicode_DecodeUTF8(
            data.as_ptr().cast(),
            data.len() as pyo3::ffi::Py_ssize_t,
            c"replace".as_ptr(),
        );
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// The capture fast path's `to_record(parse_sip(data, correlation_headers), ts=ts, ...)`: the same parse
/// as `parse`, then the whole `SipMessage` record, its id (`message_id`) and its `raw` text made here, in
/// one call per message and without the headers dict, notes or body that the record does not use.
///
/// `RecordBuilder(template, sdp_template, e164, correlation_headers, node)`: `template` is a `SipMessage`
/// and `sdp_template` an `SdpSummary` with every optional field at its default; each record starts as a
/// copy of the template (`__copy__`), then gets its values set as attributes, the optional ones only when
/// present (the others keep the template's defaults). `e164` is the number plan's memo
/// (`producers/sip_record.py: E164Memo`, a dict whose `__missing__` normalises), indexed with each raw
/// user part. `build(data, ts, src_ip, src_port, dst_ip, dst_port, transport)` returns the record, or None
/// whenever `parse` would decline or the capture time is not finite (the caller then parses with
/// `parse_sip` and builds with `to_record`).
#[pyclass(module = "sipscope_sipcore", frozen)]
struct RecordBuilder {
    copy: Py<PyAny>,
    sdp_copy: Py<PyAny>,
    e164: Py<PyDict>,
    corr: Option<Vec<String>>,
    node: Py<PyString>,
    node_str: String,
    plan: Option<Plan>,
    memo_size: usize,
}

/// `sipscope/numbers.py: NumberPlan`, for `normalise` of the usual user part: ASCII digits, or `+` and
/// ASCII digits (which `normalise` hands to `_e164` as they are). Every other form is left to Python.
struct Plan {
    country_code: String,
    trunk_prefix: String,
    international_prefix: String,
}

impl Plan {
    /// `normalise(user, plan)` when `user` is ASCII digits or `+` then ASCII digits, else None (not handled).
    fn digits_e164(&self, user: &str) -> Option<String> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if let Some(rest) = user.strip_prefix('+') {
            return digits(rest).then(|| rest.to_owned());
        }
        if !digits(user) {
            return None;
        }
        // _e164: the international prefix, then the trunk prefix, each only before a digit 1-9
        let nonzero_after = |p: &str| user.starts_with(p) && matches!(user.as_bytes().get(p.len()), Some(b'1'..=b'9'));
        let (intl, trunk) = (&self.international_prefix, &self.trunk_prefix);
        if !intl.is_empty() && nonzero_after(intl) {
            return Some(user[intl.len()..].to_owned());
        }
        if !trunk.is_empty() && nonzero_after(trunk) {
            return Some(format!("{}{}", self.country_code, &user[trunk.len()..]));
        }
        Some(user.to_owned())
    }
}

fn set_opt<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>, s: Option<&str>) -> PyResult<()> {
    match s {
        Some(v) => obj.setattr(name, PyString::new(obj.py(), v)),
        None => Ok(()),
    }
}

fn set_num<'py, T: IntoPyObjectExt<'py>>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>, v: Option<T>) -> PyResult<()> {
    match v {
        Some(v) => obj.setattr(name, v.into_bound_py_any(obj.py())?),
        None => Ok(()),
    }
}

impl RecordBuilder {
    /// The record of one message (`build`'s work once its arguments are known).
    fn make<'py>(&self, py: Python<'py>, data: &[u8], w: &Wire<'_, 'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(corr) = &self.corr else { return Ok(None) };
        let Some(head) = scan(data) else { return Ok(None) };
        let Some(p) = fill(data, &head, corr) else { return Ok(None) };
        let Some(id) = message_id(&self.node_str, w.ts, w.src_ip.to_str()?, w.src_port, w.dst_ip.to_str()?, w.dst_port, data) else {
            return Ok(None);
        };
        let m = self.copy.bind(py).call0()?;
        m.setattr(intern!(py, "id"), PyString::new(py, &id))?;
        m.setattr(intern!(py, "ts"), w.ts_obj)?;
        m.setattr(intern!(py, "src_ip"), w.src_ip)?;
        m.setattr(intern!(py, "src_port"), w.src_port_obj)?;
        m.setattr(intern!(py, "dst_ip"), w.dst_ip)?;
        m.setattr(intern!(py, "dst_port"), w.dst_port_obj)?;
        m.setattr(intern!(py, "transport"), w.transport)?;
        if !self.node_str.is_empty() {
            m.setattr(intern!(py, "node"), self.node.bind(py))?;
        }
        m.setattr(intern!(py, "is_request"), p.is_request.into_bound_py_any(py)?)?;
        set_opt(&m, intern!(py, "method"), p.method)?;
        set_num(&m, intern!(py, "status_code"), p.status_code)?;
        set_opt(&m, intern!(py, "reason"), p.reason)?;
        set_opt(&m, intern!(py, "ruri"), p.ruri)?;
        self.set_user(&m, intern!(py, "ruri_user"), intern!(py, "ruri_user_e164"), p.ruri_user)?;
        m.setattr(intern!(py, "call_id"), PyString::new(py, p.call_id))?;
        m.setattr(intern!(py, "cseq_num"), p.cseq_num.into_bound_py_any(py)?)?;
        m.setattr(intern!(py, "cseq_method"), PyString::new(py, p.cseq_method))?;
        set_opt(&m, intern!(py, "from_display"), p.from.0.as_deref())?;
        self.set_user(&m, intern!(py, "from_user"), intern!(py, "from_user_e164"), p.from.1)?;
        set_opt(&m, intern!(py, "from_host"), p.from.2)?;
        set_opt(&m, intern!(py, "from_tag"), p.from.3)?;
        set_opt(&m, intern!(py, "to_display"), p.to.0.as_deref())?;
        self.set_user(&m, intern!(py, "to_user"), intern!(py, "to_user_e164"), p.to.1)?;
        set_opt(&m, intern!(py, "to_host"), p.to.2)?;
        set_opt(&m, intern!(py, "to_tag"), p.to.3)?;
        self.set_user(&m, intern!(py, "pai_user"), intern!(py, "pai_user_e164"), p.pai_user)?;
        self.set_user(&m, intern!(py, "diversion_user"), intern!(py, "diversion_user_e164"), p.diversion_user)?;
        set_opt(&m, intern!(py, "contact"), p.contact)?;
        let user_agent = if p.is_request { p.user_agent.or(p.server) } else { p.server.or(p.user_agent) };
        set_opt(&m, intern!(py, "user_agent"), user_agent)?;
        set_opt(&m, intern!(py, "via_branch"), p.via_branch)?;
        m.setattr(intern!(py, "via_count"), p.via_count.into_bound_py_any(py)?)?;
        set_num(&m, intern!(py, "max_forwards"), p.max_forwards)?;
        set_num(&m, intern!(py, "expires"), p.expires.or(p.contact_expires))?;
        set_opt(&m, intern!(py, "auth_user"), p.auth_user.as_deref())?;
        set_num(&m, intern!(py, "q850_cause"), p.q850_cause)?;
        set_opt(&m, intern!(py, "reason_text"), p.reason_text.as_deref())?;
        set_opt(&m, intern!(py, "correlation_id"), p.correlation_id.as_deref())?;
        set_opt(&m, intern!(py, "content_type"), p.content_type.as_deref())?;
        if let Some(s) = &p.sdp {
            let sdp = self.sdp_copy.bind(py).call0()?;
            set_opt(&sdp, intern!(py, "media_ip"), s.media_ip)?;
            set_num(&sdp, intern!(py, "audio_port"), s.audio_port)?;
            set_num(&sdp, intern!(py, "video_port"), s.video_port)?;
            sdp.setattr(intern!(py, "codecs"), PyList::new(py, &s.codecs)?)?;
            set_opt(&sdp, intern!(py, "direction"), s.direction)?;
            m.setattr(intern!(py, "sdp"), sdp)?;
        }
        m.setattr(intern!(py, "raw"), decode_utf8_replace(py, data)?)?;
        Ok(Some(m))
    }

    /// Sets `name` (the raw user part) and `e164_name` (its E.164 form, when the plan gives one).
    fn set_user<'py>(
        &self,
        obj: &Bound<'py, PyAny>,
        name: &Bound<'py, PyString>,
        e164_name: &Bound<'py, PyString>,
        user: Option<&str>,
    ) -> PyResult<()> {
        if let Some(u) = user {
            let py = obj.py();
            let raw = PyString::new(py, u);
            let memo = self.e164.bind(py);
            // a hit straight from the dict; `memo[raw]` (the subclass's `__missing__`) only on a miss
            let e = match memo.get_item(&raw)? {
                Some(e) => e,
                None => match self.plan.as_ref().filter(|_| self.memo_size > 0).and_then(|plan| plan.digits_e164(u)) {
                    // `E164Memo.__missing__` for the usual form, digits or + digits, without calling it
                    Some(e) => {
                        if memo.len() >= self.memo_size {
                            memo.clear();
                        }
                        let e = PyString::new(py, &e).into_any();
                        memo.set_item(&raw, &e)?;
                        e
                    }
                    None => memo.as_any().get_item(&raw)?,
                },
            };
            obj.setattr(name, raw)?;
            if !e.is_none() {
                obj.setattr(e164_name, e)?;
            }
        }
        Ok(())
    }
}

#[pymethods]
impl RecordBuilder {
    #[new]
    #[pyo3(signature = (template, sdp_template, e164, correlation_headers, node))]
    fn new(
        template: &Bound<'_, PyAny>,
        sdp_template: &Bound<'_, PyAny>,
        e164: &Bound<'_, PyAny>,
        correlation_headers: Option<&Bound<'_, PyAny>>,
        node: &Bound<'_, PyString>,
    ) -> PyResult<Self> {
        let py = template.py();
        Ok(RecordBuilder {
            copy: template.getattr(intern!(py, "__copy__"))?.unbind(),
            sdp_copy: sdp_template.getattr(intern!(py, "__copy__"))?.unbind(),
            e164: e164.cast::<PyDict>()?.clone().unbind(),
            corr: correlation_keys(correlation_headers)?,
            node: node.clone().unbind(),
            node_str: node.to_str()?.to_owned(),
            plan: match e164.getattr(intern!(py, "plan")) {
                Ok(plan) => Some(Plan {
                    country_code: plan.getattr(intern!(py, "country_code"))?.extract()?,
                    trunk_prefix: plan.getattr(intern!(py, "trunk_prefix"))?.extract()?,
                    international_prefix: plan.getattr(intern!(py, "international_prefix"))?.extract()?,
                }),
                Err(_) => None,
            },
            memo_size: e164.getattr(intern!(py, "size")).and_then(|v| v.extract()).unwrap_or(0),
        })
    }

    /// The record of one message seen at `ts` from `src_ip:src_port` to `dst_ip:dst_port` over
    /// `transport` (lower-cased like `_message`), or None when the core declines the message.
    #[allow(clippy::too_many_arguments)]
    fn build<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        ts: &Bound<'py, PyAny>,
        src_ip: &Bound<'py, PyString>,
        src_port: &Bound<'py, PyAny>,
        dst_ip: &Bound<'py, PyString>,
        dst_port: &Bound<'py, PyAny>,
        transport: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let ts_f: f64 = ts.extract()?;
        let sport: i64 = src_port.extract()?;
        let dport: i64 = dst_port.extract()?;
        let t = transport.to_str()?;
        let transport = if t.bytes().any(|c| c.is_ascii_uppercase()) || !t.is_ascii() {
            transport.call_method0(intern!(py, "lower"))?
        } else {
            transport.clone().into_any()
        };
        let w = Wire { ts: ts_f, ts_obj: ts, src_ip, src_port: sport, src_port_obj: src_port, dst_ip,
                       dst_port: dport, dst_port_obj: dst_port, transport: &transport };
        self.make(py, data, &w)
    }

    /// Classic pcap records of `buf` from `off` (one refill of `producers/pcapfile.py`'s reader), through
    /// `netdecode.decode`'s fast path (Ethernet or Linux cooked, IPv4 without options, not a fragment,
    /// UDP) and `PcapSource`'s UDP rules, into records, until the first packet this cannot finish alone.
    ///
    /// `layout` = `(big_endian, nanoseconds, record_header_length, linktype)`; `ports` the SIP ports
    /// (a frozenset); `next_sweep` the capture time of `PcapSource`'s next timeout sweep; `shift` is added
    /// to the records' times (`--retime`; the packets' own times drive the sweeps, as in Python).
    /// Returns `(records, off, next_sweep, sweep, fallback, status, frames, keepalive, not_sip)`:
    /// * `records`: the SipMessage records of the packets handled here, in capture order;
    /// * `off`: where the next call starts (after `fallback`, when there is one);
    /// * `sweep`: None, or the capture time of the last sweep a handled packet triggered (run it before
    ///   `fallback`: handled packets never touch the fragment or TCP tables);
    /// * `fallback`: None, or `(ts, data, orig_len)` of the packet that stopped the batch, for the Python
    ///   path: any other link or network layer, a fragment, TCP, SCTP, a message the core declines;
    /// * `status`: 0 = `buf` ends (refill and call again), 1 = `corrupt_file` (a record over `max_packet`,
    ///   256 KiB unless given);
    /// * `frames`, `keepalive`, `not_sip`: counts of the packets handled here (keep-alives on a SIP
    ///   port and non-SIP UDP elsewhere are dropped and counted as `PcapSource` does).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    #[pyo3(signature = (buf, off, layout, ports, next_sweep, shift, max_packet = MAX_PACKET))]
    fn build_pcap<'py>(
        &self,
        py: Python<'py>,
        buf: &[u8],
        off: usize,
        layout: (bool, bool, usize, u32),
        ports: &Bound<'py, PyAny>,
        next_sweep: f64,
        shift: f64,
        max_packet: usize,
    ) -> PyResult<(Bound<'py, PyList>, usize, f64, Option<f64>, Option<(f64, Bound<'py, PyAny>, u32)>, u8, usize, usize, usize)> {
        let (big, nsec, hlen, linktype) = layout;
        let scale = if nsec { 1e-9 } else { 1e-6 };
        let mut bt = Batch::new(py, ports, next_sweep, shift)?;
        let mut off = off;
        let mut fallback = None;
        let mut status = 0;
        let n = buf.len();
        while off + hlen <= n {
            let sec = u32_at(buf, off, big);
            let frac = u32_at(buf, off + 4, big);
            let caplen = u32_at(buf, off + 8, big) as usize;
            let origlen = u32_at(buf, off + 12, big);
            if caplen > max_packet {
                status = 1;
                break;
            }
            let start = off + hlen;
            let end = start + caplen;
            if end > n {
                break;
            }
            let data = &buf[start..end];
            let ts = sec as f64 + frac as f64 * scale;
            off = end;
            if !self.packet(py, &mut bt, linktype, data, ts)? {
                fallback = Some((ts, pyo3::types::PyBytes::new(py, data).into_any(), origlen));
                break;
            }
        }
        Ok((bt.records, off, bt.next_sweep, bt.sweep, fallback, status, bt.frames, bt.keepalive, bt.not_sip))
    }

    /// `build_pcap` for a run of pcapng Enhanced Packet Blocks from `off` (the reader's
    /// `_pcapng_blocks` calls it at an EPB): `big_endian` is the section's byte order, `ifaces` its
    /// interfaces `(linktype, divisor, offset seconds)`. It stops, without consuming it, at any block that
    /// is not a sound EPB of a known interface with a fast link type and a timestamp Python computes the
    /// same way (the reader then handles that block), and after a packet it cannot finish alone.
    /// Returns `(records, off, last_ts, next_sweep, sweep, fallback, frames, keepalive, not_sip)`;
    /// `fallback` is `(ts, linktype, data, orig_len)`, `last_ts` the time of the last block consumed.
    #[allow(clippy::type_complexity)]
    fn build_pcapng<'py>(
        &self,
        py: Python<'py>,
        buf: &[u8],
        off: usize,
        big_endian: bool,
        ifaces: Vec<(u32, Bound<'py, PyAny>, Bound<'py, PyAny>)>,
        ports: &Bound<'py, PyAny>,
        next_sweep: f64,
        shift: f64,
    ) -> PyResult<(Bound<'py, PyList>, usize, Option<f64>, f64, Option<f64>, Option<(f64, u32, Bound<'py, PyAny>, u32)>, usize, usize, usize)> {
        const EXACT: u64 = 1 << 53; // integers a double holds exactly: Python's int / int and int + float agree
        // per interface: (linktype, divisor, offset) when both convert exactly, else None (Python decides)
        let ifaces: Vec<Option<(u32, f64, f64)>> = ifaces
            .iter()
            .map(|(lt, div, tsoff)| {
                let div = div.extract::<u64>().ok().filter(|d| *d > 0 && *d <= EXACT)?;
                let tsoff = tsoff.extract::<i64>().ok().filter(|t| t.unsigned_abs() <= EXACT)?;
                Some((*lt, div as f64, tsoff as f64))
            })
            .collect();
        let mut bt = Batch::new(py, ports, next_sweep, shift)?;
        let mut off = off;
        let mut last_ts = None;
        let mut fallback = None;
        let n = buf.len();
        while off + 28 <= n {
            let field = |i: usize| u32_at(buf, off + 4 * i, big_endian) as u64;
            let (btype, blen, ifid, hi, lo, caplen, origlen) = (field(0), field(1), field(2), field(3), field(4), field(5), field(6));
            if btype != 6 || blen < 12 || blen & 3 != 0 || blen > (1 << 26) || off + blen as usize > n || 32 + caplen > blen {
                break;
            }
            let Some(Some((linktype, div, tsoff))) = ifaces.get(ifid as usize).copied() else { break };
            let units = (hi << 32) | lo;
            let ts = if units <= EXACT { units as f64 / div } else { div_rounded(units, div as u64) } + tsoff;
            let data = &buf[off + 28..off + 28 + caplen as usize];
            off += blen as usize;
            last_ts = Some(ts);
            if !self.packet(py, &mut bt, linktype, data, ts)? {
                fallback = Some((ts, linktype, pyo3::types::PyBytes::new(py, data).into_any(), origlen as u32));
                break;
            }
        }
        Ok((bt.records, off, last_ts, bt.next_sweep, bt.sweep, fallback, bt.frames, bt.keepalive, bt.not_sip))
    }
}

/// `n / d` correctly rounded to the nearest double (ties to even), as Python's `int / int` is, for
/// `n` above 2^53 (where `n as f64` would round first) and `1 <= d <= 2^53`.
fn div_rounded(n: u64, d: u64) -> f64 {
    let num = (n as u128) << 64;
    let (q, rem) = (num / d as u128, num % d as u128);
    let top = 127 - q.leading_zeros() as i32; // q >= 2^64 here: more than 53 significant bits
    let drop = top - 52;
    let mut mant = q >> drop;
    let dropped = q & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    if dropped > half || (dropped == half && (rem != 0 || mant & 1 == 1)) {
        mant += 1; // 2^53 at most: still exact as a double
    }
    mant as f64 * 2f64.powi(drop - 64)
}

fn u32_at(b: &[u8], i: usize, big: bool) -> u32 {
    let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// One batch of `build_pcap` / `build_pcapng`: the records so far, the counters of what was dropped,
/// `PcapSource`'s sweep clock, and the address strings and port numbers made once per batch.
struct Batch<'py> {
    ports: std::collections::HashSet<u16>,
    records: Bound<'py, PyList>,
    addrs: std::collections::HashMap<[u8; 4], Bound<'py, PyString>>,
    port_objs: std::collections::HashMap<u16, Bound<'py, PyAny>>,
    udp: Bound<'py, PyAny>,
    frames: usize,
    keepalive: usize,
    not_sip: usize,
    next_sweep: f64,
    sweep: Option<f64>,
    shift: f64,
}

impl<'py> Batch<'py> {
    fn new(py: Python<'py>, ports: &Bound<'py, PyAny>, next_sweep: f64, shift: f64) -> PyResult<Self> {
        Ok(Batch {
            ports: ports.try_iter()?.map(|p| p?.extract::<u16>()).collect::<PyResult<_>>()?,
            records: PyList::empty(py),
            addrs: std::collections::HashMap::new(),
            port_objs: std::collections::HashMap::new(),
            udp: intern!(py, "udp").clone().into_any(),
            frames: 0,
            keepalive: 0,
            not_sip: 0,
            next_sweep,
            sweep: None,
            shift,
        })
    }

    /// `PcapSource`'s sweep check, for a packet handled here.
    fn swept(&mut self, ts: f64) {
        if ts >= self.next_sweep {
            (self.next_sweep, self.sweep) = (ts + SWEEP_EVERY, Some(ts));
        }
    }

    /// `ip_str` of an IPv4 address (one string per address and batch).
    fn addr(&mut self, py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
        let k = [b[0], b[1], b[2], b[3]];
        self.addrs.entry(k).or_insert_with(|| PyString::new(py, &format!("{}.{}.{}.{}", k[0], k[1], k[2], k[3]))).clone()
    }

    fn port(&mut self, py: Python<'py>, p: u16) -> PyResult<Bound<'py, PyAny>> {
        if let Some(v) = self.port_objs.get(&p) {
            return Ok(v.clone());
        }
        let v = p.into_bound_py_any(py)?;
        self.port_objs.insert(p, v.clone());
        Ok(v)
    }
}

impl RecordBuilder {
    /// One captured frame: handled here (a record, or dropped and counted as `PcapSource` drops it)
    /// -> true; for the Python path (`netdecode.decode`'s slow paths, a message the core declines) -> false,
    /// with nothing counted.
    fn packet<'py>(&self, py: Python<'py>, bt: &mut Batch<'py>, linktype: u32, data: &[u8], ts: f64) -> PyResult<bool> {
        // netdecode.decode's fast path: header offset of the IPv4 packet, or the Python path
        let ip = match linktype {
            1 if data.len() >= 42 && be16(data, 12) == 0x0800 => 14,
            113 if data.len() >= 16 + 28 && data[14] == 8 && data[15] == 0 => 16,
            276 if data.len() >= 20 + 28 && data[0] == 8 && data[1] == 0 => 20,
            _ => return Ok(false),
        };
        let o = ip;
        let total = be16(data, o + 2) as usize;
        let frag = be16(data, o + 6);
        let sport = be16(data, o + 20);
        let dport = be16(data, o + 22);
        let ulen = be16(data, o + 24) as usize;
        if !(data[o] == 0x45 && data[o + 9] == 17 && frag & 0x3FFF == 0 && 8 <= ulen && ulen + 20 <= total
            && o + total <= data.len() && dport != 4789)
        {
            return Ok(false);
        }
        let payload = &data[o + 28..o + 20 + ulen];
        // PcapSource's UDP rules
        if bt.ports.contains(&sport) || bt.ports.contains(&dport) {
            if payload.len() <= 8 && payload.iter().all(|c| matches!(c, b'\r' | b'\n' | 0 | b' ')) {
                bt.swept(ts);
                bt.keepalive += 1;
                bt.frames += 1;
                return Ok(true);
            }
        } else if !looks_like_sip(payload) {
            bt.swept(ts);
            bt.not_sip += 1;
            bt.frames += 1;
            return Ok(true);
        }
        let src_ip = bt.addr(py, &data[o + 12..o + 16]);
        let dst_ip = bt.addr(py, &data[o + 16..o + 20]);
        let sport_obj = bt.port(py, sport)?;
        let dport_obj = bt.port(py, dport)?;
        // the record's time: `--retime` shifts it as `pipeline.retimed` shifts a payload's (after PcapSource)
        let rec_ts = ts + bt.shift;
        let ts_obj = pyo3::types::PyFloat::new(py, rec_ts).into_any();
        let w = Wire { ts: rec_ts, ts_obj: &ts_obj, src_ip: &src_ip, src_port: sport as i64, src_port_obj: &sport_obj,
                       dst_ip: &dst_ip, dst_port: dport as i64, dst_port_obj: &dport_obj, transport: &bt.udp };
        // a panic or an error in the core: the Python path decides, as for `build`
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.make(py, payload, &w)));
        let Ok(Ok(Some(rec))) = made else { return Ok(false) };
        bt.records.append(rec)?;
        bt.swept(ts);
        bt.frames += 1;
        Ok(true)
    }
}

/// Where and when one message was seen (the arguments of `build`, as Rust values and Python objects).
struct Wire<'a, 'py> {
    ts: f64,
    ts_obj: &'a Bound<'py, PyAny>,
    src_ip: &'a Bound<'py, PyString>,
    src_port: i64,
    src_port_obj: &'a Bound<'py, PyAny>,
    dst_ip: &'a Bound<'py, PyString>,
    dst_port: i64,
    dst_port_obj: &'a Bound<'py, PyAny>,
    transport: &'a Bound<'py, PyAny>,
}

/// `producers/pcapfile.py: MAX_PACKET`.
const MAX_PACKET: usize = 262_144;
/// `producers/pcap_source.py: _SWEEP_EVERY`.
const SWEEP_EVERY: f64 = 1.0;

/// `producers/pcap_source.py: looks_like_sip`: a SIP status line, or a request line ending in `SIP/2.0`.
fn looks_like_sip(p: &[u8]) -> bool {
    if p.is_empty() || !p[0].is_ascii_uppercase() {
        return false;
    }
    if p.len() >= 8 && &p[..8] == b"SIP/2.0 " {
        return true;
    }
    let Some(eol) = p[..p.len().min(2048)].iter().position(|&c| c == b'\n') else { return false };
    // Python: end = eol - 1 if payload[eol - 1] == 13 else eol (eol >= 1 here: p[0] is a letter)
    let end = if p[eol - 1] == 13 { eol - 1 } else { eol };
    end >= 8 && &p[end - 8..end] == b" SIP/2.0"
}

/// `format(x, "")` (= `repr`) of a float: CPython's own `float_repr`, `PyOS_double_to_string(x, 'r', 0,
/// Py_DTSF_ADD_DOT_0)`, without a Python object. (Rust's shortest digits differ on ties:
/// 562949953421312.25 is "...312.3" in Rust and "...312.2" in Python.)
fn float_repr(x: f64) -> Option<String> {
    // SAFETY: a C string allocated by Python (PyMem_Malloc), copied, then freed; NULL on failure
    unsafe {
        let p = pyo3::ffi::PyOS_double_to_string(x, b'r' as std::ffi::c_char, 0, pyo3::ffi::Py_DTSF_ADD_DOT_0, std::ptr::null_mut());
        if p.is_null() {
            return None;
        }
        let s = std::ffi::CStr::from_ptr(p).to_str().ok().map(str::to_owned);
        pyo3::ffi::PyMem_Free(p.cast());
        s
    }
}

/// `sipscope.records.stable_id`: blake2b-128 hex of `"".join(f"{p}\x1f" for p in parts)` in UTF-8. str, int
/// and float parts are spelled here (floats by `float_repr`); any other part by `format(p, "")`.
#[pyfunction]
#[pyo3(signature = (*parts))]
fn stable_id(parts: &Bound<'_, PyTuple>) -> PyResult<String> {
    let mut state = blake2b_simd::Params::new().hash_length(16).to_state();
    for p in parts.iter() {
        if let Ok(s) = p.cast_exact::<PyString>() {
            state.update(s.to_str()?.as_bytes());
        } else if let Some(t) = p
            .is_exact_instance_of::<pyo3::types::PyFloat>()
            .then(|| p.extract::<f64>().ok().and_then(float_repr))
            .flatten()
        {
            state.update(t.as_bytes());
        } else if let Some(i) = p.is_exact_instance_of::<pyo3::types::PyInt>().then(|| p.extract::<i64>().ok()).flatten() {
            state.update(i.to_string().as_bytes());
        } else {
            // SAFETY: both pointers are live objects; a NULL result is an error set by Python
            let f = unsafe {
                let spec = PyString::new(p.py(), "");
                Bound::from_owned_ptr_or_err(p.py(), pyo3::ffi::PyObject_Format(p.as_ptr(), spec.as_ptr()))?
            };
            state.update(f.cast::<PyString>()?.to_str()?.as_bytes());
        }
        state.update(b"\x1f");
    }
    Ok(state.finalize().to_hex().to_string())
}

#[pymodule]
fn sipscope_sipcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse, m)?)?;
    m.add_function(wrap_pyfunction!(stable_id, m)?)?;
    m.add_class::<RecordBuilder>()?;
    Ok(())
}

