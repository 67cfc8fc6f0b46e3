//! The quit dialog shown while a deployment is in progress: hold traffic and
//! exit (resumable), or stay; then, while the engine records the hold, a wait.
//! With the built-in router it says plainly that quitting stops the router.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, QuitChoice, QuitDialog};
use super::screen::{centered, pane_block};

pub fn render(frame: &mut Frame, area: Rect, app: &App, dialog: QuitDialog) {
    let theme = app.theme();
    let weight = app
        .snapshot()
        .traffic
        .as_ref()
        .map_or(0, |t| t.current_weight);
    // The built-in router lives in this process: nothing is held once it exits.
    let builtin = app.builtin_router();
    let lines = match dialog {
        QuitDialog::Asking { choice } => {
            let button = |label: &'static str, this: QuitChoice| {
                let style = if choice == this {
                    theme.selected
                } else {
                    theme.key
                };
                Span::styled(label, style)
            };
            if app.attached() {
                return render_lines(
                    frame,
                    area,
                    app,
                    vec![
                        Line::from(format!(
                            "The deployment goes on in its engine (canary at {weight}%)."
                        )),
                        Line::from("`cutover attach` brings a dashboard back, from any terminal."),
                        Line::default(),
                        Line::from(vec![
                            Span::raw(" "),
                            button("[ d  detach ]", QuitChoice::Detach),
                            Span::raw("  "),
                            button("[ h  hold and detach ]", QuitChoice::HoldAndExit),
                            Span::raw("  "),
                            button("[ s  stay ]", QuitChoice::Stay),
                        ]),
                        Line::default(),
                        Line::styled(
                            "hold: progression paused, traffic stays where it is. R still rolls back at once.",
                            theme.muted,
                        ),
                    ],
                );
            }
            let (consequence, hold_label) = if builtin {
                (
                    vec![
                        Line::from("The built-in router stops with cutover: its clients get no"),
                        Line::from(format!(
                            "answer until `cutover run --resume` starts it again at {weight}%."
                        )),
                    ],
                    "[ h  stop and exit (resumable) ]",
                )
            } else {
                (
                    vec![Line::from(
                        "Quitting holds traffic here; `cutover run --resume` carries on.",
                    )],
                    "[ h  hold traffic and exit ]",
                )
            };
            let mut lines = vec![Line::from(format!(
                "The deployment is in progress (canary at {weight}%)."
            ))];
            lines.extend(consequence);
            lines.extend([
                Line::default(),
                Line::from(vec![
                    Span::raw(" "),
                    button(hold_label, QuitChoice::HoldAndExit),
                    Span::raw("   "),
                    button("[ s  stay ]", QuitChoice::Stay),
                ]),
                Line::default(),
                Line::styled("R still rolls back at once.", theme.muted),
            ]);
            lines
        }
        QuitDialog::Holding if builtin => vec![
            Line::from(format!("Recording the interruption at {weight}%…")),
            Line::from("The built-in router stops when cutover exits."),
            Line::default(),
            Line::from("The dashboard closes when the engine confirms."),
            Line::styled("q leaves now without waiting.", theme.muted),
        ],
        QuitDialog::Holding => vec![
            Line::from(format!(
                "Holding traffic at {weight}% and recording the interruption…"
            )),
            Line::default(),
            Line::from("The dashboard closes when the engine confirms."),
            Line::styled("q leaves now without waiting.", theme.muted),
        ],
    };
    render_lines(frame, area, app, lines);
}

/// The dialog's box with its lines, centred.
fn render_lines(frame: &mut Frame, area: Rect, app: &App, lines: Vec<Line<'static>>) {
    let theme = app.theme();
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let popup = centered(area, 72, height);
    let block = pane_block(Line::from(" quit? "), true, theme);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(theme.dialog)
            .wrap(Wrap { trim: false }),
        popup,
    );
}
