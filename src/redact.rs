//! Secrets (values that came from `${env:…}`) masked in every string that
//! leaves cutover: journal lines, log lines, snapshots, errors, summaries,
//! file names. Each secret is matched in its raw, percent-encoded (any case),
//! form-encoded, JSON-escaped and debug-escaped forms.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock, RwLock};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// What stands in for a secret.
pub const MASK: &str = "••••••";

/// Secrets shorter than this are not masked on their own (a one-letter
/// value would mask every such letter); config refuses them.
pub const MIN_SECRET_LEN: usize = 4;

/// The characters WHATWG's URL parser percent-encodes in userinfo.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'|');

/// A set of secret values and every form of each worth matching.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so a secret inside another is masked with the outer one.
    forms: Vec<String>,
}

impl Secrets {
    pub fn new<I: IntoIterator<Item = String>>(values: I) -> Secrets {
        let mut s = Secrets::default();
        for v in values {
            s.add(&v);
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Adds a secret value (and its encodings).
    pub fn add(&mut self, value: &str) {
        if value.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        for set in [NON_ALPHANUMERIC, USERINFO] {
            let upper = utf8_percent_encode(value, set).to_string();
            forms.push(lower_hex(&upper));
            forms.push(upper);
        }
        forms.push(form_urlencoded::byte_serialize(value.as_bytes()).collect());
        if let Ok(json) = serde_json::to_string(value) {
            forms.push(json[1..json.len() - 1].to_string());
            // A JSON string holding the JSON-escaped form (a journal line
            // quoting an error message that quoted the secret).
            if let Ok(twice) = serde_json::to_string(&json[1..json.len() - 1]) {
                forms.push(twice[1..twice.len() - 1].to_string());
            }
        }
        forms.push(value.escape_debug().to_string());
        for f in forms {
            if !f.is_empty() && !self.forms.contains(&f) {
                self.forms.push(f);
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// `text` with every form of every secret masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = Cow::Owned(out.replace(f.as_str(), MASK));
            }
        }
        out
    }

    /// Masks secrets in every string of a JSON value (keys included).
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(o) => {
                let entries = std::mem::take(o);
                for (k, mut x) in entries {
                    self.redact_json(&mut x);
                    o.insert(self.redact(&k).into_owned(), x);
                }
            }
            _ => {}
        }
    }
}

fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&code.to_ascii_lowercase());
        rest = &rest[i + code.len()..];
    }
    out.push_str(rest);
    out
}

/// The process's secrets, for output that has no plan at hand (log layers,
/// error messages on stderr). Every plan loaded adds its secrets.
fn global() -> &'static RwLock<Arc<Secrets>> {
    static GLOBAL: OnceLock<RwLock<Arc<Secrets>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(Secrets::default())))
}

/// Adds secrets to the process-wide set used by [`text`].
pub fn install(secrets: &Secrets) {
    if secrets.is_empty() {
        return;
    }
    let mut guard = match global().write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut merged = (**guard).clone();
    for f in &secrets.forms {
        if !merged.forms.contains(f) {
            merged.forms.push(f.clone());
        }
    }
    merged.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    *guard = Arc::new(merged);
}

/// The process-wide secrets.
pub fn installed() -> Arc<Secrets> {
    match global().read() {
        Ok(g) => Arc::clone(&g),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// `text` with every installed secret masked.
pub fn text(text: &str) -> String {
    installed().redact(text).into_owned()
}

/// A URL fit to show: user info and query dropped (they carry credentials).
pub fn url_for_display(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_of_a_secret_is_masked() {
        let s = Secrets::new(["p@ss w/rd:\"x\"".to_string()]);
        let raw = "p@ss w/rd:\"x\"";
        let cases = [
            raw.to_string(),
            utf8_percent_encode(raw, NON_ALPHANUMERIC).to_string(),
            lower_hex(&utf8_percent_encode(raw, NON_ALPHANUMERIC).to_string()),
            utf8_percent_encode(raw, USERINFO).to_string(),
            form_urlencoded::byte_serialize(raw.as_bytes()).collect(),
            serde_json::to_string(raw).unwrap(),
            serde_json::to_string(&serde_json::to_string(raw).unwrap()).unwrap(),
            format!("{raw:?}"),
        ];
        for c in cases {
            let text = format!("before {c} after");
            let shown = s.redact(&text);
            assert!(!shown.contains("ss w"), "{c} → {shown}");
            assert!(
                !shown.contains("ss%20w") && !shown.contains("ss+w"),
                "{shown}"
            );
            assert!(shown.contains(MASK), "{shown}");
        }
    }

    #[test]
    fn a_url_loses_its_credentials_for_display() {
        assert_eq!(
            url_for_display("http://user:pw@127.0.0.1:9090/api?token=t#x"),
            "http://127.0.0.1:9090/api"
        );
    }

    #[test]
    fn json_keys_and_values_are_masked() {
        let s = Secrets::new(["hunter22".to_string()]);
        let mut v = serde_json::json!({"a": ["x hunter22"], "hunter22": 1});
        s.redact_json(&mut v);
        assert!(!v.to_string().contains("hunter22"), "{v}");
    }
}
