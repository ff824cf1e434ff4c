//! One served file: its bytes in each encoding, compressed once when the snapshot is built, and
//! its ETag.

use std::io::Write;
use std::sync::Arc;

pub(crate) const HTML: &str = "text/html; charset=utf-8";
pub(crate) const JSON: &str = "application/json";
pub(crate) const ATOM: &str = "application/atom+xml; charset=utf-8";

/// gzip's best level: the cost is paid once per rebuild, not per request.
const GZIP_LEVEL: u32 = 9;
/// Brotli's quality 10 and 11 cost about ten times the CPU of 9 for a few percent less; the
/// snapshot is rebuilt often on small machines, so 9 it is.
const BROTLI_QUALITY: u32 = 9;
/// A 4 MiB window, the largest that every browser decodes.
const BROTLI_WINDOW: u32 = 22;

/// A content coding an asset is held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

/// A file of the snapshot. Bodies are `Arc`s so that serving one is a reference count, not a
/// copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` to send.
    pub content_type: &'static str,
    pub identity: Arc<[u8]>,
    pub gzip: Arc<[u8]>,
    pub brotli: Arc<[u8]>,
    /// A strong ETag, quotes included, from the identity bytes: equal bytes give equal tags in
    /// every process, since the hash has no random seed.
    pub etag: String,
    etag_gzip: String,
    etag_brotli: String,
}

impl Asset {
    pub(crate) fn build(
        content_type: &'static str,
        identity: Vec<u8>,
        previous: Option<&Asset>,
    ) -> Asset {
        if let Some(previous) = previous {
            if previous.content_type == content_type && *previous.identity == *identity {
                return previous.clone();
            }
        }
        let hash = fnv1a_64(&identity);
        let tag = |suffix: &str| {
            let mut etag = format!("\"{hash:016x}");
            etag.push_str(suffix);
            etag.push('"');
            etag
        };
        Asset {
            content_type,
            gzip: gzip(&identity).into(),
            brotli: brotli(&identity).into(),
            identity: identity.into(),
            etag: tag(""),
            etag_gzip: tag("-gz"),
            etag_brotli: tag("-br"),
        }
    }

    /// The body in a given encoding.
    pub fn body(&self, encoding: Encoding) -> &Arc<[u8]> {
        match encoding {
            Encoding::Identity => &self.identity,
            Encoding::Gzip => &self.gzip,
            Encoding::Brotli => &self.brotli,
        }
    }

    /// The ETag of the body in a given encoding. Each encoding is a different representation
    /// (RFC 9110 §8.8.3), so the compressed ones carry a suffix; [`Asset::etag`] is the
    /// identity's.
    pub fn etag_for(&self, encoding: Encoding) -> &str {
        match encoding {
            Encoding::Identity => &self.etag,
            Encoding::Gzip => &self.etag_gzip,
            Encoding::Brotli => &self.etag_brotli,
        }
    }

    pub(crate) fn total_bytes(&self) -> usize {
        self.identity.len()
            + self.gzip.len()
            + self.brotli.len()
            + self.etag.len()
            + self.etag_gzip.len()
            + self.etag_brotli.len()
    }
}

/// 64-bit FNV-1a: deterministic, dependency-free, and plenty to tell versions of one file apart.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = brotli::CompressorWriter::new(
        Vec::with_capacity(bytes.len() / 4),
        4096,
        BROTLI_QUALITY,
        BROTLI_WINDOW,
    );
    encoder.write_all(bytes).expect("brotli into memory");
    // Taking the writer back finishes the stream.
    encoder.into_inner()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::{fixture, render};

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut output)
            .unwrap();
        output
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut output)
            .unwrap();
        output
    }

    #[test]
    fn compressed_bodies_decode_to_the_identity() {
        let snapshot = render(&fixture::view(5, 30, 3, 3));
        for path in snapshot.paths() {
            let asset = snapshot.get(path).unwrap();
            assert_eq!(gunzip(&asset.gzip), *asset.identity, "{path}");
            assert_eq!(unbrotli(&asset.brotli), *asset.identity, "{path}");
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn each_encoding_has_its_own_etag_and_body() {
        let asset = Asset::build(JSON, b"{\"a\":1}".to_vec(), None);
        let tags = [
            asset.etag_for(Encoding::Identity),
            asset.etag_for(Encoding::Gzip),
            asset.etag_for(Encoding::Brotli),
        ];
        assert_eq!(tags[0], asset.etag);
        assert!(tags[1].ends_with("-gz\"") && tags[2].ends_with("-br\""));
        assert_eq!(**asset.body(Encoding::Identity), *b"{\"a\":1}");
        assert_eq!(gunzip(asset.body(Encoding::Gzip)), b"{\"a\":1}");
        assert_eq!(unbrotli(asset.body(Encoding::Brotli)), b"{\"a\":1}");
    }
}
