//! The integrator's guides as pages of the server itself (`GET /docs/js-api`,
//! `GET /docs/integrating`), so that the admin pages can link to them: docs/JS-API.md and
//! docs/INTEGRATING.md, built into the binary and rendered to HTML once, on the first request.
//!
//! The Markdown is the project's own, yet it is rendered as text only: raw HTML in it shows as
//! text, and the page carries no script, under the same policy as every other page. Links to
//! the other guide and to files the server serves (`../web/…`) point at those; links to files
//! it does not serve (the examples, API.md) keep their words and lose the link.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::response::Response;
use pulldown_cmark::{Alignment, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::assets::html_page;

/// `(page, Markdown file, its source)`.
const GUIDES: [(&str, &str, &str); 2] = [
    (
        "js-api",
        "JS-API.md",
        include_str!("../../../../docs/JS-API.md"),
    ),
    (
        "integrating",
        "INTEGRATING.md",
        include_str!("../../../../docs/INTEGRATING.md"),
    ),
];

static PAGES: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    GUIDES
        .iter()
        .map(|(page, _, source)| (*page, render(source)))
        .collect()
});

/// `GET /docs/{page}`: a guide as an HTML page, or the JSON 404 of any unknown page.
pub async fn page(State(app): State<AppState>, Path(page): Path<String>) -> Response {
    match PAGES.get(page.as_str()) {
        Some(html) => html_page(&app.config.public_url, html.clone()),
        None => axum::response::IntoResponse::into_response(ApiError::not_found("page")),
    }
}

/// The whole page: the admin pages' styles, a `<main>` with the guide (its `# …` is the `h1`).
fn render(markdown: &str) -> String {
    let title = markdown
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("Confidant");
    let mut body = String::new();
    html::push_html(&mut body, events(markdown).into_iter());
    let nav: String = GUIDES
        .iter()
        .map(|(page, file, _)| format!(r#" · <a href="/docs/{page}">{file}</a>"#))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <title>{title} — Confidant</title>
  <link rel="stylesheet" href="/shared/ui.css">
  <link rel="stylesheet" href="/admin/admin.css">
</head>
<body>
  <nav class="doc-nav" aria-label="Confidant documentation"><a href="/admin/">Administration</a>{nav}</nav>
  <main class="doc">
{body}  </main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The guide's events: raw HTML as text, headings with GitHub's anchors (the guides link to
/// `#checking-a-token`), links pointed at what this server serves.
fn events(markdown: &str) -> Vec<Event<'_>> {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut out: Vec<Event<'_>> = Vec::new();
    let mut slugs: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<(HeadingLevel, Vec<Event<'_>>)> = None;
    let mut dropped_link = false;
    for event in Parser::new_ext(markdown, options) {
        let event = match event {
            Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
            // An aligned column would be a style attribute, which the page policy refuses.
            Event::Start(Tag::Table(columns)) => {
                Event::Start(Tag::Table(vec![Alignment::None; columns.len()]))
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match link_target(&dest_url) {
                Some(dest_url) => Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }),
                None => {
                    dropped_link = true;
                    continue;
                }
            },
            Event::End(TagEnd::Link) if dropped_link => {
                dropped_link = false;
                continue;
            }
            other => other,
        };
        match (event, &mut heading) {
            (Event::Start(Tag::Heading { level, .. }), None) => heading = Some((level, Vec::new())),
            (Event::End(TagEnd::Heading(_)), Some(_)) => {
                let Some((level, inner)) = heading.take() else {
                    continue;
                };
                let id = unique(&mut slugs, slug(&inner));
                out.push(Event::Start(Tag::Heading {
                    level,
                    id: Some(id.into()),
                    classes: Vec::new(),
                    attrs: Vec::new(),
                }));
                out.extend(inner);
                out.push(Event::End(TagEnd::Heading(level)));
            }
            (event, Some((_, inner))) => inner.push(event),
            (event, None) => out.push(event),
        }
    }
    out
}

/// Where a link of the guides leads on this server; `None` for a file it does not serve.
fn link_target(dest: &str) -> Option<CowStr<'static>> {
    if dest.starts_with('#') || dest.starts_with("https://") || dest.starts_with("http://") {
        return Some(dest.to_owned().into());
    }
    let (file, fragment) = match dest.split_once('#') {
        Some((file, fragment)) => (file, format!("#{fragment}")),
        None => (dest, String::new()),
    };
    if let Some((page, _, _)) = GUIDES.iter().find(|(_, f, _)| *f == file) {
        return Some(format!("/docs/{page}{fragment}").into());
    }
    // web/ is what the server serves at its root.
    file.strip_prefix("../web/")
        .map(|served| format!("/{served}{fragment}").into())
}

/// GitHub's anchor of a heading: its text in lower case, spaces as `-`, other punctuation gone.
fn slug(inner: &[Event<'_>]) -> String {
    inner
        .iter()
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            _ => None,
        })
        .flat_map(str::chars)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The second heading with the same anchor gets `-1`, the third `-2` (as GitHub does).
fn unique(seen: &mut HashMap<String, usize>, slug: String) -> String {
    let n = seen.entry(slug.clone()).or_insert(0);
    let id = if *n == 0 { slug } else { format!("{slug}-{n}") };
    *n += 1;
    id
}

/// `text` for HTML, escaped as the renderer escapes text.
fn escape(text: &str) -> String {
    let mut out = String::new();
    html::push_html(&mut out, std::iter::once(Event::Text(text.into())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_githubs_anchors_and_links_follow_the_server() {
        let page = render(
            "# Guide <b>one</b>\n\n## 2. `Confidant.init(options)` → `Promise<boolean>`\n\n## Again\n\n## Again\n\n\
             See [the other](INTEGRATING.md#checking-a-token), [types](../web/messenger/v1/confidant.d.ts), \
             [examples](../examples/) and [a site](https://example.com/x).\n\n<script>alert(1)</script>\n\n\
             | a | b |\n| :-- | --: |\n| 1 | 2 |\n",
        );
        assert!(page.contains("<title>Guide &lt;b&gt;one&lt;/b&gt; — Confidant</title>"));
        assert!(
            page.contains(r#"<h2 id="2-confidantinitoptions--promiseboolean">"#),
            "{page}"
        );
        assert!(page.contains(r#"<h2 id="again">"#) && page.contains(r#"<h2 id="again-1">"#));
        assert!(page.contains(r#"<a href="/docs/integrating#checking-a-token">the other</a>"#));
        assert!(page.contains(r#"<a href="/messenger/v1/confidant.d.ts">types</a>"#));
        assert!(page.contains(" examples and "), "{page}");
        assert!(page.contains(r#"<a href="https://example.com/x">a site</a>"#));
        assert!(
            !page.contains("<script>") && page.contains("&lt;script&gt;"),
            "{page}"
        );
    }

    #[test]
    fn the_guides_render_with_their_links_inside() {
        for (page, _, _) in GUIDES {
            let html = &PAGES[page];
            assert_eq!(html.matches("<h1").count(), 1, "{page}");
            assert!(html.contains("<main class=\"doc\">"), "{page}");
            let (_, main) = html.split_once("<main").expect("a main");
            for dest in main
                .split("href=\"")
                .skip(1)
                .filter_map(|s| s.split('"').next())
            {
                assert!(
                    dest.starts_with('/') || dest.starts_with('#') || dest.starts_with("http"),
                    "{page}: a link to {dest}"
                );
                if let Some(anchor) = dest.strip_prefix("/docs/integrating#") {
                    assert!(
                        PAGES["integrating"].contains(&format!("id=\"{anchor}\"")),
                        "{page}: no heading #{anchor} in the integrating guide"
                    );
                }
            }
        }
    }
}
