//! The browsable API reference at `/api/v1/docs`: served by Tocsin itself, reading the OpenAPI
//! document the server generates.

use crate::support::spawn_app;

/// `src="..."` and `href="..."` values of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_is_a_page_served_with_its_assets_and_the_openapi_document() {
    let app = spawn_app().await;
    // `/api/v1/docs` leads to the page (no token needed, like the OpenAPI document).
    let response = app
        .client
        .get(app.url("/api/v1/docs"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let page_url = response.url().clone();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("body");
    assert!(
        html.contains("<html") && html.contains("swagger-ui"),
        "{html}"
    );

    // Every script and stylesheet comes from Tocsin itself, none from a CDN.
    let assets = references(&html);
    assert!(
        assets.iter().any(|asset| asset.ends_with(".js")),
        "{assets:?}"
    );
    for asset in &assets {
        assert!(
            !asset.starts_with("http:") && !asset.starts_with("https:") && !asset.starts_with("//"),
            "{asset} is loaded from elsewhere"
        );
        let url = page_url.join(asset).expect("asset URL");
        let response = app.client.get(url.clone()).send().await.expect("asset");
        assert_eq!(response.status(), 200, "{url}");
    }

    // The page reads the server's own OpenAPI document, which is served.
    let initializer = app
        .client
        .get(page_url.join("swagger-initializer.js").expect("URL"))
        .send()
        .await
        .expect("initializer");
    assert_eq!(initializer.status(), 200);
    let initializer = initializer.text().await.expect("body");
    assert!(
        initializer.contains("\"/api/v1/openapi.json\""),
        "{initializer}"
    );
    // The document is not sent to the public online validator either.
    assert!(
        initializer.contains("\"validatorUrl\": \"none\"")
            || initializer.contains("\"validatorUrl\":\"none\""),
        "{initializer}"
    );
    let (status, document) = app
        .request(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(document["info"]["title"], "Tocsin API");
    assert!(document["paths"]["/api/v1/incidents"].is_object());
    app.stop().await;
}
