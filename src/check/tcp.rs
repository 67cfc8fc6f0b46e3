//! `tcp` checks: pass when a connection opens in time.

use std::time::Duration;

use super::Attempt;

pub async fn connect(addr: &str, display: &str, timeout: Duration) -> Attempt {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Attempt::pass(format!("connected to {display}")),
        Ok(Err(e)) => Attempt::fail(format!("cannot connect to {display}: {e}")),
        Err(_) => Attempt::fail(format!(
            "no connection to {display} within {}",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert!(connect(&addr, &addr, Duration::from_secs(2)).await.passed);
        drop(l);
        let a = connect(&addr, &addr, Duration::from_secs(2)).await;
        assert!(!a.passed);
        assert!(a.message.contains("cannot connect"), "{}", a.message);
    }
}
