//! Writing values the way [`decode`](crate::decode) reads them back, the same for every backend.

use tocsin_core::{EventLink, TimelineData};

/// A timeline entry's `data` column (see [`decode::timeline_data`](crate::decode::timeline_data)).
pub fn timeline_data(data: &TimelineData) -> String {
    crate::timeline::encode(data)
}

/// A change event's links as stored: a JSON array of `{"href", "text"?}` objects.
pub fn change_links(links: &[EventLink]) -> String {
    let links: Vec<_> = links
        .iter()
        .map(|link| match &link.text {
            Some(text) => serde_json::json!({ "href": link.href, "text": text }),
            None => serde_json::json!({ "href": link.href }),
        })
        .collect();
    serde_json::Value::Array(links).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_their_text_only_when_they_have_one() {
        let links = [
            EventLink {
                href: "https://ci.example/1".to_owned(),
                text: Some("build 1".to_owned()),
            },
            EventLink {
                href: "https://ci.example/2".to_owned(),
                text: None,
            },
        ];
        assert_eq!(
            change_links(&links),
            r#"[{"href":"https://ci.example/1","text":"build 1"},{"href":"https://ci.example/2"}]"#
        );
        assert_eq!(change_links(&[]), "[]");
    }
}
