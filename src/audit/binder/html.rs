//! HTML for people: each artifact's JSON rendered as headed sections and
//! tables, and the binder's index page. Rendering is deterministic (the
//! same JSON gives the same bytes), so `binder verify` can re-render and
//! compare. Fields a person must complete render as empty, labelled boxes.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                let s = format!("{f:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                n.to_string()
            }
        }
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => esc(&other.to_string()),
    }
}

fn title(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// Rows of objects with the same keys render as one table.
fn table(rows: &[Value], out: &mut String) {
    let mut keys: Vec<String> = Vec::new();
    for r in rows {
        for k in r.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    out.push_str("<table><tr>");
    for k in &keys {
        out.push_str(&format!("<th>{}</th>", esc(&title(k))));
    }
    out.push_str("</tr>");
    for r in rows {
        let pass = r.get("passed").and_then(Value::as_bool);
        let class = match pass {
            Some(false) => " class=\"fail\"",
            _ => "",
        };
        out.push_str(&format!("<tr{class}>"));
        for k in &keys {
            let v = r.get(k).unwrap_or(&Value::Null);
            let cell = match v {
                Value::Object(_) | Value::Array(_) => {
                    let mut inner = String::new();
                    render(v, 9, &mut inner);
                    inner
                }
                _ => scalar(v),
            };
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn render(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Object(map) => {
            let simple: Vec<_> = map
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Object(_) | Value::Array(_)))
                .collect();
            if !simple.is_empty() {
                out.push_str("<dl>");
                for (k, v) in simple {
                    out.push_str(&format!(
                        "<dt>{}</dt><dd>{}</dd>",
                        esc(&title(k)),
                        scalar(v)
                    ));
                }
                out.push_str("</dl>");
            }
            for (k, v) in map
                .iter()
                .filter(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)))
            {
                let h = (depth + 2).min(6);
                if k == "to_be_completed_by_the_expert" {
                    out.push_str(&format!("<h{h}>{}</h{h}>", esc(&title(k))));
                    for (field, text) in v.as_object().into_iter().flatten() {
                        out.push_str(&format!(
                            "<div class=\"blank\"><b>{}</b><br>{}</div>",
                            esc(&title(field)),
                            scalar(text)
                        ));
                    }
                    continue;
                }
                if depth < 8 {
                    out.push_str(&format!("<h{h}>{}</h{h}>", esc(&title(k))));
                }
                render(v, depth + 1, out);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            table(items, out)
        }
        Value::Array(items) => {
            out.push_str("<ul>");
            for i in items {
                out.push_str("<li>");
                render(i, depth + 1, out);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        other => out.push_str(&scalar(other)),
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0;font-size:90%}td,th{border:1px solid #bbb;padding:2px 6px;vertical-align:top}\
th{background:#eee}tr.fail td{background:#fdd}dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}\
dt{font-weight:bold}.blank{border:1px dashed #333;min-height:5em;margin:.5em 0;padding:.5em}code{font-size:90%}";

/// One artifact's page.
pub fn page(heading: &str, body: &Value) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(heading),
        esc(heading)
    );
    render(body, 0, &mut out);
    out.push_str("</body></html>\n");
    out
}

/// The index page: one row per artifact, with its files and digests.
pub fn index(manifest: &Value) -> String {
    let r = &manifest["release"];
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Audit binder {}</title><style>{STYLE}</style></head><body>\
<h1>Audit binder: release {}</h1><dl><dt>Topology</dt><dd>{}</dd><dt>Status</dt><dd>{}</dd><dt>Model</dt><dd>v{} (sha256 {})</dd>\
<dt>Validation run</dt><dd>{}</dd><dt>Generated</dt><dd>{}</dd><dt>Engine</dt><dd>resynth {} (commit {})</dd><dt>Audit log head</dt><dd>entry {} ({})</dd></dl>\
<table><tr><th>#</th><th>Artifact</th><th>Files</th><th>sha256</th><th>Left for a person</th></tr>",
        scalar(&r["batch_id"]),
        scalar(&r["batch_id"]),
        scalar(&r["topology"]),
        scalar(&r["status"]),
        scalar(&r["model_version"]),
        scalar(&r["model_sha256"]),
        scalar(&r["validation_run"]),
        scalar(&manifest["generated_at"]),
        scalar(&manifest["engine_version"]),
        scalar(&manifest["build_commit"]),
        scalar(&manifest["audit_head"]["seq"]),
        scalar(&manifest["audit_head"]["hash"]),
    );
    for a in manifest["artifacts"].as_array().into_iter().flatten() {
        let files: Vec<&Value> = a["files"].as_array().into_iter().flatten().collect();
        let links: Vec<String> = files
            .iter()
            .map(|f| {
                let p = f.as_str().unwrap_or("");
                format!("<a href=\"{}\">{}</a>", esc(p), esc(p))
            })
            .collect();
        let digests: Vec<String> = files
            .iter()
            .map(|f| {
                let p = f.as_str().unwrap_or("");
                manifest["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["path"] == p)
                    .and_then(|x| x["sha256"].as_str())
                    .map_or("—".into(), |d| {
                        format!("<code>{}…</code>", &d[..16.min(d.len())])
                    })
            })
            .collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            scalar(&a["number"]),
            scalar(&a["title"]),
            links.join("<br>"),
            digests.join("<br>"),
            scalar(&a["left_for_a_person"]),
        ));
    }
    out.push_str(
        "</table><p>Check this binder with <code>resynth binder verify DIR --trusted-key KEY.pub.pem</code>: \
every digest in <code>manifest.json</code>, the audit chain in <code>evidence/audit.jsonl</code>, the artifacts \
re-derived from that evidence, the lineage links and the approvals in <code>approvals/</code>.</p></body></html>\n",
    );
    out
}
