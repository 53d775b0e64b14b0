//! `exim-pilot generate`: the man page and shell completions, rendered from
//! the clap definitions so they cannot drift from the real command line. The
//! packages run it at build time (ripgrep's `--generate` does the same).

use std::io::{self, Write};

use clap::{Arg, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::{Cli, Generated};

/// Sections no flag describes: configuration, guarantees, signals, files,
/// environment, exit status, examples.
const HAND_WRITTEN_SECTIONS: &str = include_str!("manpage.roff");

/// Writes what `what` names to standard output.
pub fn stdout(what: Generated) -> anyhow::Result<()> {
    Ok(run(what, &mut io::stdout().lock())?)
}

/// Writes what `what` names to `out`.
pub fn run(what: Generated, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Cli::command();
    command.build();
    match what {
        Generated::Man => man_page(&command, out),
        Generated::Bash => complete(Shell::Bash, command, out),
        Generated::Zsh => complete(Shell::Zsh, command, out),
        Generated::Fish => complete(Shell::Fish, command, out),
    }
}

fn complete(shell: Shell, mut command: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    clap_complete::generate(shell, &mut command, "exim-pilot", out);
    Ok(())
}

/// exim-pilot(8): clap_mangen's standard sections, then one subsection per
/// command with its own options (clap_mangen would point at a page per
/// command instead), then the hand-written sections.
fn man_page(command: &clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let man = Man::new(command.clone())
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("exim-pilot {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    commands_section(command).to_writer(out)?;
    out.write_all(HAND_WRITTEN_SECTIONS.as_bytes())
}

fn commands_section(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    let documented = |sub: &&clap::Command| !sub.is_hide_set() && sub.get_name() != "help";
    for sub in command.get_subcommands().filter(documented) {
        let usage = sub.clone().render_usage().to_string();
        roff.control("SS", [sub.get_name()]);
        roff.text([bold(usage.trim_start_matches("Usage: ").trim())]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            roff.control("PP", []);
            roff.text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments().filter(|arg| is_documented(arg)) {
            roff.control("TP", []);
            roff.text(arg_heading(arg));
            let help = arg.get_long_help().or_else(|| arg.get_help());
            let mut text = help.map(ToString::to_string).unwrap_or_default();
            let defaults = arg.get_default_values();
            if let ([default], true) = (defaults, arg.get_action().takes_values()) {
                text.push_str(&format!(" [default: {}]", default.to_string_lossy()));
            }
            roff.text([roman(text)]);
        }
    }
    roff
}

/// Options worth a line: not hidden, not clap's own help and version, not
/// the global `--config` (described once under OPTIONS).
fn is_documented(arg: &Arg) -> bool {
    !arg.is_hide_set()
        && !arg.is_global_set()
        && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// `-s, --long VALUE` or `FILE...` in man page markup.
fn arg_heading(arg: &Arg) -> Vec<clap_mangen::roff::Inline> {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(clap::builder::Str::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if arg.is_positional() {
        let many = if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            "..."
        } else {
            ""
        };
        return vec![italic(format!("{value}{many}"))];
    }
    let mut heading = Vec::new();
    if let Some(short) = arg.get_short() {
        heading.push(bold(format!("-{short}")));
        heading.push(roman(", "));
    }
    if let Some(long) = arg.get_long() {
        heading.push(bold(format!("--{long}")));
    }
    if arg.get_action().takes_values() && !value.is_empty() {
        heading.push(roman(" "));
        heading.push(italic(value));
    }
    heading
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(what: Generated) -> String {
        let mut out = Vec::new();
        run(what, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn man_page_documents_every_visible_command_and_flag() {
        let page = generated(Generated::Man);
        assert!(page.contains("\n.TH exim-pilot 8 "), "{}", &page[..120]);
        let command = Cli::command();
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            assert!(
                page.contains(&format!(".SS {}\n", sub.get_name())),
                "{}",
                sub.get_name()
            );
            for arg in sub.get_arguments().filter(|arg| is_documented(arg)) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "{long}"
                    );
                }
            }
        }
        assert!(
            !page.contains(".SS generate"),
            "the generator itself stays hidden"
        );
        for section in [
            "CONFIGURATION",
            "SIGNALS",
            "FILES",
            "EXIT STATUS",
            "EXAMPLES",
        ] {
            assert!(page.contains(&format!(".SH {section}")), "{section}");
        }
    }

    #[test]
    fn completions_name_the_commands_for_each_shell() {
        for what in [Generated::Bash, Generated::Zsh, Generated::Fish] {
            let script = generated(what);
            for name in ["trace", "stats", "check-config"] {
                assert!(script.contains(name), "{what:?} completion lacks {name}");
            }
        }
    }
}
