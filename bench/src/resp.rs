//! A minimal Redis (RESP2) client over a loopback TCP connection: enough to
//! ping, poll a queue's length and shut the server down, without a crate.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    pub fn connect(port: u16) -> anyhow::Result<Redis> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Redis {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn command(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)?;
        read_reply(&mut self.reader)
    }

    pub fn int(&mut self, args: &[&str]) -> anyhow::Result<i64> {
        match self.command(args)? {
            Reply::Int(n) => Ok(n),
            other => bail!("redis {args:?}: expected an integer, got {other:?}"),
        }
    }

    /// The integer a counter key holds (`INCR`), 0 while it does not exist.
    pub fn counter(&mut self, key: &str) -> anyhow::Result<i64> {
        match self.command(&["GET", key])? {
            Reply::Bulk(None) => Ok(0),
            Reply::Bulk(Some(v)) => String::from_utf8_lossy(&v)
                .parse()
                .with_context(|| format!("redis key {key} is not a counter")),
            other => bail!("redis GET {key}: {other:?}"),
        }
    }
}

fn read_reply(r: &mut impl BufRead) -> anyhow::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("redis closed the connection");
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(rest.parse().context("redis integer")?),
        "$" => {
            let len: i64 = rest.parse().context("redis bulk length")?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut data = vec![0u8; len as usize + 2];
                r.read_exact(&mut data)?;
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
        }
        "*" => {
            let len: i64 = rest.parse().context("redis array length")?;
            let mut items = Vec::new();
            for _ in 0..len.max(0) {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        _ => bail!("unexpected redis reply {line:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_each_kind_are_parsed() {
        let mut input: &[u8] = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n-ERR x\r\n";
        assert_eq!(read_reply(&mut input).unwrap(), Reply::Status("OK".into()));
        assert_eq!(read_reply(&mut input).unwrap(), Reply::Int(42));
        assert_eq!(
            read_reply(&mut input).unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut input).unwrap(), Reply::Bulk(None));
        assert_eq!(
            read_reply(&mut input).unwrap(),
            Reply::Array(vec![Reply::Int(1), Reply::Error("ERR x".into())])
        );
    }
}
