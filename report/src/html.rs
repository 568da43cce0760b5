//! The HTML report: ONE self-contained page (inline CSS, the results table, the figures as
//! inline SVG, the notes; no script, no external URL) that can be mailed or opened from disk.
//! Every piece of text is escaped; the SVGs (the `cauda` client draws them) are embedded as
//! they are.

use cauda_proto::v1::GetReportResponse;

use crate::columns::{cells, headers, notes};
use crate::{Figure, title};

/// The page's stylesheet: readable defaults, a striped table with right-aligned numbers.
const CSS: &str = "\
body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1400px;\
padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}\
table{border-collapse:collapse;font-size:.92em}\
th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\
th{background:#f3f3f3;border-bottom:2px solid #999}\
th:first-child,td:first-child{text-align:left}\
tr:nth-child(even) td{background:#fafafa}\
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}\
figure svg{max-width:100%;height:auto}";

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document ready to inline: the XML declaration (not allowed inside HTML) dropped.
fn inline_svg(svg: &str) -> &str {
    let trimmed = svg.trim_start();
    if trimmed.starts_with("<?xml")
        && let Some(end) = trimmed.find("?>")
    {
        return trimmed[end + 2..].trim_start();
    }
    trimmed
}

/// One self-contained page: `title` as heading, the table (`headers`, then `rows`; a row
/// shorter than the headers is padded with empty cells), each figure, then each line of
/// `notes` as a paragraph.
pub fn page(
    title: &str,
    headers: &[&str],
    rows: &[Vec<String>],
    figures: &[Figure],
    notes: &str,
) -> String {
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str(&format!("<title>{}</title>\n", escape(title)));
    page.push_str(&format!("<style>{CSS}</style>\n</head>\n<body>\n"));
    page.push_str(&format!("<h1>{}</h1>\n", escape(title)));
    page.push_str("<table>\n<thead><tr>");
    for h in headers {
        page.push_str(&format!("<th>{}</th>", escape(h)));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        page.push_str("<tr>");
        let cells = row.len().max(headers.len());
        for i in 0..cells {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            page.push_str(&format!("<td>{}</td>", escape(cell)));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
    for figure in figures {
        page.push_str(&format!(
            "<h2>{}</h2>\n<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            escape(&figure.caption),
            inline_svg(&figure.svg),
            escape(&figure.caption)
        ));
    }
    for line in notes.lines() {
        page.push_str(&format!("<p>{}</p>\n", escape(line)));
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// The report's page: its title, the survey's table, `figures`, the notes.
pub fn html(report: &GetReportResponse, figures: &[Figure]) -> String {
    let rows: Vec<Vec<String>> = report.rows.iter().map(cells).collect();
    page(&title(report), &headers(), &rows, figures, &notes(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn figure(caption: &str, svg: &str) -> Figure {
        Figure {
            caption: caption.into(),
            svg: svg.into(),
        }
    }

    fn sample() -> String {
        page(
            "e-1 <digits> & co",
            &["method", "top1"],
            &[
                strings(&["ce", "71.2"]),
                strings(&["<script>x</script>", "a&b"]),
            ],
            &[
                figure(
                    "per-class",
                    "<?xml version=\"1.0\"?>\n<svg id=\"a\"><path d=\"M0 0\"/></svg>",
                ),
                figure("curves", "<svg id=\"b\"></svg>"),
            ],
            "first <note>\nsecond",
        )
    }

    #[test]
    fn text_is_escaped() {
        let html = sample();
        assert!(
            html.contains("<h1>e-1 &lt;digits&gt; &amp; co</h1>"),
            "{html}"
        );
        assert!(html.contains("<td>&lt;script&gt;x&lt;/script&gt;</td><td>a&amp;b</td>"));
        assert!(!html.contains("<script>"));
        assert_eq!(escape("\"'"), "&quot;&#39;");
    }

    #[test]
    fn the_page_holds_the_table_and_both_svgs_inline() {
        let html = sample();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<th>method</th><th>top1</th>"));
        assert!(html.contains("<tr><td>ce</td><td>71.2</td></tr>"));
        assert!(html.contains("<svg id=\"a\"><path d=\"M0 0\"/></svg>"));
        assert!(html.contains("<svg id=\"b\"></svg>"));
        assert!(!html.contains("<?xml"), "the XML declaration is dropped");
        assert!(html.find("id=\"a\"") < html.find("id=\"b\""));
        assert!(html.contains("<style>"));
        assert!(html.ends_with("<p>first &lt;note&gt;</p>\n<p>second</p>\n</body>\n</html>\n"));
    }

    #[test]
    fn the_page_is_self_contained() {
        let html = sample();
        for external in ["http://", "https://", "<link", "<script", "src="] {
            assert!(!html.contains(external), "{external}");
        }
    }

    #[test]
    fn short_rows_are_padded() {
        let html = page("t", &["a", "b"], &[strings(&["x"])], &[], "");
        assert!(html.contains("<tr><td>x</td><td></td></tr>"));
    }
}
