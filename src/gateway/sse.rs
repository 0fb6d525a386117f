//! Server-sent events: an incremental reader of an upstream's stream and the writer of ours.
//!
//! Written here rather than taken from a crate: the reader must hand back events as bytes
//! arrive split anywhere (inside a UTF-8 sequence, between `\r` and `\n`), keep going after
//! a line it cannot use, and never buffer without bound; the SSE crates we looked at either
//! own the HTTP client or assume whole chunks.

/// One event: its `event:` name (empty when the stream gave none) and its `data:` lines
/// joined by `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

impl Event {
    pub fn new(name: impl Into<String>, data: impl Into<String>) -> Event {
        Event { name: name.into(), data: data.into() }
    }

    /// The event as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(self.name.len() + self.data.len() + 16);
        if !self.name.is_empty() {
            s.push_str("event: ");
            s.push_str(&self.name);
            s.push('\n');
        }
        for line in self.data.split('\n') {
            s.push_str("data: ");
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
        s.into_bytes()
    }
}

/// Reads events out of bytes as they come.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
    name: String,
    data: Vec<String>,
    has_data: bool,
}

/// An upstream line longer than this is an error, not a reason to hold the whole stream.
pub const MAX_LINE: usize = 16 << 20;

impl Reader {
    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', self.buf.get(start..).unwrap_or_default()) {
            let end = start + nl;
            let line = self.buf.get(start..end).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(e) = self.line(&line) {
                out.push(e);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(format!("an event line longer than {MAX_LINE} bytes"));
        }
        Ok(out)
    }

    /// The event left when the stream ends without a blank line after it.
    pub fn finish(&mut self) -> Option<Event> {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
            if let Some(e) = self.line(&line) {
                return Some(e);
            }
        }
        self.line("")
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if !self.has_data && self.name.is_empty() {
                return None;
            }
            let e = Event { name: std::mem::take(&mut self.name), data: self.data.join("\n") };
            self.data.clear();
            self.has_data = false;
            return Some(e);
        }
        if line.starts_with(':') {
            return None; // a comment
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                self.data.push(value.to_string());
                self.has_data = true;
            }
            _ => {} // id, retry: nothing fak needs
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let wire =
            "event: message_start\ndata: {\"a\":\"é\"}\n\n: comment\r\nevent: ping\r\ndata: {}\r\n\r\ndata: [DONE]\n\n";
        let whole = Reader::default().feed(wire.as_bytes()).unwrap();
        assert_eq!(
            whole,
            [Event::new("message_start", "{\"a\":\"é\"}"), Event::new("ping", "{}"), Event::new("", "[DONE]")]
        );
        for split in 1..wire.len() {
            let mut r = Reader::default();
            let mut got = r.feed(&wire.as_bytes()[..split]).unwrap();
            got.extend(r.feed(&wire.as_bytes()[split..]).unwrap());
            assert_eq!(got, whole, "split at {split}");
        }
    }

    #[test]
    fn a_last_event_without_a_blank_line_is_kept() {
        let mut r = Reader::default();
        assert!(r.feed(b"event: message_stop\ndata: {}").unwrap().is_empty());
        assert_eq!(r.finish(), Some(Event::new("message_stop", "{}")));
        assert_eq!(r.finish(), None);
    }

    #[test]
    fn events_are_written_as_read() {
        let e = Event::new("content_block_delta", "{\"x\":1}\nsecond");
        assert_eq!(Reader::default().feed(&e.to_bytes()).unwrap(), [e]);
    }
}
