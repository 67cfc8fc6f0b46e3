//! `http` checks: a GET that passes on the expected status and body.

use std::time::Duration;

use super::Attempt;

pub async fn get(
    url: &str,
    display: &str,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
    timeout: Duration,
) -> Attempt {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Attempt::fail(format!("cannot build an HTTP client: {e}")),
    };
    let resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Attempt::fail(format!(
                "GET {display}: no answer within {}",
                humantime::format_duration(timeout)
            ))
        }
        Err(e) => return Attempt::fail(format!("GET {display}: {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    let status_ok = match expect_status {
        Some(s) => status == s,
        None => (200..300).contains(&status),
    };
    let body = resp.text().await.unwrap_or_default();
    let first_line: String = body
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if !status_ok {
        let want = expect_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "2xx".to_string());
        let mut a = Attempt::fail(format!("GET {display} answered {status}, expected {want}"));
        a.tail = vec![first_line];
        return a;
    }
    if let Some(needle) = expect_body {
        if !body.contains(needle) {
            let mut a = Attempt::fail(format!(
                "GET {display} answered {status} but the body does not contain \"{needle}\""
            ));
            a.tail = vec![first_line];
            return a;
        }
    }
    Attempt::pass(format!("GET {display} answered {status}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
