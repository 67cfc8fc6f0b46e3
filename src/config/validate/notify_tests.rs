//! `[notify]`: webhook, format, secret, events.

use crate::config::testing::*;
use crate::config::NotifyFormat;

#[test]
fn a_webhook_plan_validates() {
    let p = plan(&format!("{HEAD}[notify]\nwebhook = \"https://hooks.example/${{env:CUTOVER_TEST_SECRET}}\"\nformat = \"json\"\nsecret = \"${{env:CUTOVER_TEST_SECRET}}\"\nevents = [\"started\", \"failed\", \"failed\"]\n"));
    let n = p.notify.unwrap();
    assert_eq!(n.format, NotifyFormat::Json);
    assert_eq!(n.events, vec!["started", "failed"]);
    assert!(!n.webhook_display.contains(SECRET));
    assert_eq!(n.secret.as_deref(), Some(SECRET));
}

#[test]
fn mistakes_are_named() {
    expect(
        &format!("{HEAD}[notify]\nwebhook = \"ftp://x\"\n"),
        "6:11",
        "is not an http:// or https:// URL",
    );
    expect(
        &format!("{HEAD}[notify]\nwebhook = \"http://x\"\nformat = \"xml\"\n"),
        "7:10",
        "use \"slack\" or \"json\"",
    );
    expect(
        &format!("{HEAD}[notify]\nwebhook = \"http://x\"\nevents = [\"deployed\"]\n"),
        "7:11",
        "event \"deployed\" is not known",
    );
    expect(
        &format!("{HEAD}[notify]\nformat = \"json\"\n"),
        "5:1",
        "[notify] needs webhook",
    );
    // A short secret cannot be masked.
    expect(
        &format!(
            "{HEAD}[notify]\nwebhook = \"http://x\"\nsecret = \"${{env:CUTOVER_TEST_SHORT}}\"\n"
        ),
        "7:10",
        "shorter than 4",
    );
}
