//! The WebDAV bits ocmigrate needs: a PROPFIND body, a multistatus parser that keeps the
//! properties a migration compares (ETag, file id, size, mtime), and URL encoding of paths.

use crate::exit::Failure;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;

pub const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
  <d:prop>
    <d:getetag/><oc:fileid/><oc:id/><oc:size/><d:getlastmodified/><d:getcontentlength/><d:resourcetype/><oc:permissions/>
  </d:prop>
</d:propfind>"#;

/// One `<d:response>` of a multistatus, with the properties found in its 200 propstat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DavEntry {
    pub href: String,
    pub etag: Option<String>,
    pub fileid: Option<String>,
    pub id: Option<String>,
    pub size: Option<String>,
    pub lastmodified: Option<String>,
    pub contentlength: Option<String>,
    pub permissions: Option<String>,
    pub collection: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Multistatus {
    pub entries: Vec<DavEntry>,
}

impl Multistatus {
    /// The first entry (the requested resource itself).
    pub fn root(&self) -> Option<&DavEntry> {
        self.entries.first()
    }
}

/// Percent-encode one path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode a path, keeping its slashes.
pub fn encode_path(p: &str) -> String {
    p.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn entity(name: &str) -> String {
    match name {
        "quot" => "\"".into(),
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "apos" => "'".into(),
        n => {
            let code = n
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()));
            code.and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_default()
        }
    }
}

/// Parse a 207 multistatus body.
pub fn parse_multistatus(xml: &str) -> Result<Multistatus, Failure> {
    let mut reader = Reader::from_str(xml);
    let mut out = Multistatus::default();
    let mut cur: Option<DavEntry> = None;
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    // Properties of a propstat are kept only when its status is 200.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut pending_collection = false;
    let mut status_ok = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| Failure::check(format!("the WebDAV answer is not valid XML: {e}")))?;
        match ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                match name.as_str() {
                    "response" => cur = Some(DavEntry::default()),
                    "propstat" => {
                        pending.clear();
                        pending_collection = false;
                        status_ok = false;
                    }
                    _ => {}
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e) if e.local_name().as_ref() == "collection" => {
                pending_collection = true;
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => text.push_str(&entity(&r.xml10_content())),
            Event::CData(c) => text.push_str(&c.into_inner()),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let value = std::mem::take(&mut text);
                match name.as_str() {
                    "href" => {
                        if let Some(c) = cur.as_mut() {
                            c.href = value.trim().to_string();
                        }
                    }
                    "status" => status_ok = value.contains(" 200 "),
                    "propstat" => {
                        if let (true, Some(c)) = (status_ok, cur.as_mut()) {
                            for (k, v) in pending.drain(..) {
                                let v = Some(v);
                                match k.as_str() {
                                    "getetag" => c.etag = v,
                                    "fileid" => c.fileid = v,
                                    "id" => c.id = v,
                                    "size" => c.size = v,
                                    "getlastmodified" => c.lastmodified = v,
                                    "getcontentlength" => c.contentlength = v,
                                    "permissions" => c.permissions = v,
                                    _ => {}
                                }
                            }
                            c.collection |= pending_collection;
                        }
                    }
                    "response" => {
                        if let Some(c) = cur.take() {
                            out.entries.push(c);
                        }
                    }
                    "collection" => pending_collection = true,
                    _ if stack.last().map(|s| s == "prop").unwrap_or(false) => {
                        pending.push((name, value.trim().to_string()))
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_owncloud_multistatus() {
        let xml = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns">
 <d:response><d:href>/remote.php/dav/files/admin/</d:href>
  <d:propstat><d:prop><d:getetag>&quot;5f1a2b3c4d5e6&quot;</d:getetag><oc:fileid>12</oc:fileid>
   <oc:id>00000012oc1234567890</oc:id><d:resourcetype><d:collection/></d:resourcetype></d:prop>
   <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:getcontentlength/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
 </d:response>
 <d:response><d:href>/remote.php/dav/files/admin/a%20b.txt</d:href>
  <d:propstat><d:prop><d:getetag>"abc"</d:getetag><oc:fileid>13</oc:fileid><d:getcontentlength>5</d:getcontentlength><d:resourcetype/></d:prop>
   <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let ms = parse_multistatus(xml).unwrap();
        assert_eq!(ms.entries.len(), 2);
        let root = ms.root().unwrap();
        assert_eq!(root.etag.as_deref(), Some("\"5f1a2b3c4d5e6\""));
        assert_eq!(root.fileid.as_deref(), Some("12"));
        assert!(root.collection);
        assert_eq!(root.contentlength, None, "404 propstat values are not kept");
        assert_eq!(ms.entries[1].contentlength.as_deref(), Some("5"));
        assert!(!ms.entries[1].collection);
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(
            encode_path("Documents/a b#c.txt"),
            "Documents/a%20b%23c.txt"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}
