//! Running the system's networking tools (`ip`, `vtysh`, ...) with errors that show the
//! command line and what it printed.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::LabError;

/// Runs a command to completion and returns its output, whatever its exit status.
pub(crate) fn output<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output, LabError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(LabError::io(format!("cannot run {program}")))
}

/// Runs a command and returns its standard output, or an error when it fails.
pub(crate) fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String, LabError> {
    let out = output(program, args)?;
    checked(program, args, out)
}

/// Turns a finished command's output into its stdout, or an error naming the command.
pub(crate) fn checked<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    out: Output,
) -> Result<String, LabError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: command_line(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip -n NS ARGS...`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The command as a user would type it, for messages.
pub(crate) fn command_line<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_owned();
    for a in args {
        line.push(' ');
        let a = a.as_ref().to_string_lossy();
        if a.contains(char::is_whitespace) || a.is_empty() {
            line.push_str(&format!("'{a}'"));
        } else {
            line.push_str(&a);
        }
    }
    line
}

/// Whether a program can be found on PATH (or is an existing absolute path).
pub(crate) fn have(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
