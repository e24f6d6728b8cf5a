//! Reads the server name (SNI) from a TLS ClientHello, without decrypting anything: the
//! proxy peeks at the first bytes of a `CONNECT` tunnel to refuse domain fronting and
//! non-TLS traffic.
//!
//! The ClientHello may span several TLS records; [`client_hello_sni`] reassembles up to
//! [`MAX_HELLO`] bytes of handshake and says how many more bytes it needs when the buffer is
//! short.

/// The largest ClientHello Lookout reads (post-quantum key shares make hellos of ~2 KiB; 16 KiB
/// leaves room).
pub const MAX_HELLO: usize = 16 * 1024;

/// Why no server name could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SniError {
    /// More bytes are needed (at least this many in the whole buffer).
    #[error("incomplete ClientHello (need {0} bytes)")]
    Incomplete(usize),
    /// The bytes are not a TLS handshake.
    #[error("not TLS")]
    NotTls,
    /// A TLS handshake that is not a well-formed ClientHello.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The ClientHello is larger than [`MAX_HELLO`].
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
}

/// The ClientHello's `server_name` (lower-cased, trailing dot removed), or `None` when it has
/// no SNI extension.
pub fn client_hello_sni(buf: &[u8]) -> Result<Option<String>, SniError> {
    let hello = reassemble(buf)?;
    parse_hello(&hello)
}

/// Concatenates the handshake records' payloads until the first handshake message is whole.
fn reassemble(buf: &[u8]) -> Result<Vec<u8>, SniError> {
    let mut payload = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else {
            if at == 0 && !buf.is_empty() && buf[0] != 22 {
                return Err(SniError::NotTls);
            }
            return Err(SniError::Incomplete(at + 5));
        };
        // Record type handshake (22), major version 3.
        if header[0] != 22 || header[1] != 3 {
            return Err(SniError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16384 + 256 {
            return Err(SniError::Malformed("record length"));
        }
        let Some(body) = buf.get(at + 5..at + 5 + len) else {
            return Err(SniError::Incomplete(at + 5 + len));
        };
        payload.extend_from_slice(body);
        at += 5 + len;
        if payload.len() >= 4 {
            if payload[0] != 1 {
                return Err(SniError::Malformed(
                    "first handshake message is not a ClientHello",
                ));
            }
            let need = 4
                + (usize::from(payload[1]) << 16
                    | usize::from(payload[2]) << 8
                    | usize::from(payload[3]));
            if need > MAX_HELLO {
                return Err(SniError::TooLarge);
            }
            if payload.len() >= need {
                payload.truncate(need);
                return Ok(payload);
            }
        }
        if at > MAX_HELLO + 5 * 8 {
            return Err(SniError::TooLarge);
        }
    }
}

/// A cursor over the ClientHello.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SniError> {
        if self.buf.len() < n {
            return Err(SniError::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<usize, SniError> {
        Ok(usize::from(self.take(1, what)?[0]))
    }
    fn u16(&mut self, what: &'static str) -> Result<usize, SniError> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], SniError> {
        let n = self.u8(what)?;
        self.take(n, what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], SniError> {
        let n = self.u16(what)?;
        self.take(n, what)
    }
}

fn parse_hello(hello: &[u8]) -> Result<Option<String>, SniError> {
    let mut r = Reader { buf: &hello[4..] };
    r.take(2, "version")?;
    r.take(32, "random")?;
    r.vec8("session id")?;
    r.vec16("cipher suites")?;
    r.vec8("compression methods")?;
    if r.buf.is_empty() {
        return Ok(None); // No extensions at all.
    }
    let mut exts = Reader {
        buf: r.vec16("extensions")?,
    };
    let mut found = None;
    while !exts.buf.is_empty() {
        let kind = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        if kind != 0 {
            continue;
        }
        if found.is_some() {
            return Err(SniError::Malformed("two server_name extensions"));
        }
        let mut list = Reader {
            buf: Reader { buf: data }.vec16("server name list")?,
        };
        while !list.buf.is_empty() {
            let name_type = list.u8("server name type")?;
            let name = list.vec16("server name")?;
            if name_type != 0 {
                continue;
            }
            if found.is_some() {
                return Err(SniError::Malformed("two host names"));
            }
            let name = std::str::from_utf8(name)
                .ok()
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or(SniError::Malformed("server name is not an ASCII host name"))?;
            found = Some(name.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a ClientHello record carrying `names` (type, name) in one SNI extension.
    pub(crate) fn hello(names: &[(u8, &str)], extra_ext: &[u8]) -> Vec<u8> {
        let mut list = Vec::new();
        for (t, n) in names {
            list.push(*t);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n.as_bytes());
        }
        let mut sni = (list.len() as u16).to_be_bytes().to_vec();
        sni.extend_from_slice(&list);
        let mut exts = Vec::new();
        // An unrelated extension first (supported_groups).
        exts.extend_from_slice(&[0, 10, 0, 4, 0, 2, 0, 29]);
        if !names.is_empty() {
            exts.extend_from_slice(&[0, 0]);
            exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
            exts.extend_from_slice(&sni);
        }
        exts.extend_from_slice(extra_ext);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_the_server_name() {
        let rec = hello(&[(0, "WWW.Example.COM.")], &[]);
        assert_eq!(client_hello_sni(&rec), Ok(Some("www.example.com".into())));
        assert_eq!(client_hello_sni(&hello(&[], &[])), Ok(None));
    }

    #[test]
    fn short_buffers_ask_for_more() {
        let rec = hello(&[(0, "example.com")], &[]);
        for cut in [0, 1, 4, 5, 20, rec.len() - 1] {
            match client_hello_sni(&rec[..cut]) {
                Err(SniError::Incomplete(n)) => assert!(n > cut, "cut {cut} asked for {n}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_hello_split_over_records_is_reassembled() {
        let rec = hello(&[(0, "split.example")], &[]);
        let hs = &rec[5..];
        let (a, b) = hs.split_at(10);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[22, 3, 3]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        assert_eq!(client_hello_sni(&two), Ok(Some("split.example".into())));
    }

    #[test]
    fn hostile_hellos_are_errors() {
        let good = hello(&[(0, "example.com")], &[]);
        let mut wrong_type = good.clone();
        wrong_type[5] = 2;
        let mut huge = good.clone();
        huge[6..9].copy_from_slice(&[0x01, 0, 0]);
        let mut long_ext = good.clone();
        let n = long_ext.len();
        long_ext[n - 13] = 0xff; // name length beyond the extension
        for (name, input, want) in [
            ("http", b"GET / HTTP/1.1\r\n\r\n".to_vec(), SniError::NotTls),
            ("ssh", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(), SniError::NotTls),
            ("one byte", vec![0x16 + 1], SniError::NotTls),
            (
                "zero record",
                vec![22, 3, 1, 0, 0],
                SniError::Malformed("record length"),
            ),
            (
                "server hello",
                wrong_type,
                SniError::Malformed("first handshake message is not a ClientHello"),
            ),
            ("too large", huge, SniError::TooLarge),
            (
                "name past end",
                long_ext,
                SniError::Malformed("server name"),
            ),
            (
                "two names",
                hello(&[(0, "a.example"), (0, "b.example")], &[]),
                SniError::Malformed("two host names"),
            ),
            (
                "binary name",
                hello(&[(0, "a\u{1}b")], &[]),
                SniError::Malformed("server name is not an ASCII host name"),
            ),
        ] {
            assert_eq!(client_hello_sni(&input), Err(want), "{name}");
        }
    }
}
