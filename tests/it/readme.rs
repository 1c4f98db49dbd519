//! The README's usage walkthrough runs literally, as a new user would run
//! it: the `sh` blocks of "Try it on the test kit" and "Run the webhook and
//! the CI gate", in one bash session from the repository root, with the
//! built `provgate` first on `PATH` (what `cargo install --path .` gives).
//! Every `provgate …` line whose comment ends in `exit N` must exit N.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo;

/// The README sections whose `sh` blocks form the walkthrough, in order.
const SECTIONS: [&str; 2] = [
    "### Try it on the test kit",
    "### Run the webhook and the CI gate",
];

/// The first ```sh block after `heading`.
fn sh_block<'a>(readme: &'a str, heading: &str) -> &'a str {
    let at = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?} section"));
    let rest = &readme[at + heading.len() + 2..];
    let next_heading = rest
        .find("\n## ")
        .or(rest.find("\n### "))
        .unwrap_or(rest.len());
    let section = &rest[..next_heading];
    let start = section
        .find("```sh\n")
        .unwrap_or_else(|| panic!("no sh block in {heading:?}"))
        + "```sh\n".len();
    let len = section[start..]
        .find("\n```")
        .unwrap_or_else(|| panic!("unterminated sh block in {heading:?}"));
    &section[start..start + len]
}

/// `provgate ARGS  # … exit N` → (`provgate ARGS`, N).
fn expected_exit(line: &str) -> Option<(&str, i32)> {
    if !line.starts_with("provgate ") {
        return None;
    }
    let (cmd, comment) = line.split_once("  #")?;
    let code = comment.trim().rsplit_once("exit ")?.1.trim().parse().ok()?;
    Some((cmd.trim_end(), code))
}

/// The walkthrough as a script that checks each annotated exit code.
fn script(readme: &str) -> (String, usize) {
    let mut out = String::from("set -u\n");
    let mut checked = 0;
    for heading in SECTIONS {
        for line in sh_block(readme, heading).lines() {
            match expected_exit(line) {
                Some((cmd, code)) => {
                    checked += 1;
                    let quoted = cmd.replace('\'', r"'\''");
                    out.push_str(&format!(
                        "rc=0; {cmd} || rc=$?; if [ $rc -ne {code} ]; then echo 'README: exit '$rc', expected {code}: {quoted}' >&2; exit 99; fi\n"
                    ));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    (out, checked)
}

#[test]
fn readme_walkthrough_annotations_are_parsed() {
    assert_eq!(
        expected_exit("provgate check $IMG:v1   # ALLOWED: exit 0"),
        Some(("provgate check $IMG:v1", 0))
    );
    assert_eq!(
        expected_exit("provgate check x -c y   # DENIED, evidence none: exit 3"),
        Some(("provgate check x -c y", 3))
    );
    assert_eq!(expected_exit("$tk attach x y"), None);
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (_, checked) = script(&readme);
    assert!(checked >= 10, "only {checked} annotated provgate lines");
}

#[test]
fn readme_walkthrough_runs_literally_against_the_kit() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    // The README starts with the same two commands.
    assert!(
        readme.starts_with(
            "# provgate\n\n```sh\ncargo run -- serve\n../shared/testkit/install.sh && .ci/deps.sh && .ci/chart.sh && cargo test\n```\n"
        ),
        "the README's first two commands changed"
    );
    let (script, _) = script(&readme);
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_provgate"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(repo())
        .env("PATH", path)
        .env("CI", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
        .env_remove("PROVGATE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Its own process group: on a timeout, the background server goes too.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().expect("run bash");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (out, err) = (out_t.join().unwrap(), err_t.join().unwrap());
    let status =
        status.unwrap_or_else(|| panic!("timed out\n--- stdout\n{out}\n--- stderr\n{err}"));
    assert!(
        status.success(),
        "the README walkthrough failed ({status})\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    // What the walkthrough says it shows, it shows.
    assert!(
        out.contains("NOTHING VERIFIED: its evidence could not be fetched"),
        "{out}"
    );
    assert!(out.contains("  evidence   none\n"), "{out}");
    assert!(out.contains("signer not trusted"), "{out}");
    assert!(
        err.contains("provgate: hint: the certificate of 127.0.0.1 is not signed by a CA"),
        "{err}"
    );
    assert!(err.contains("provgate: error: no token given"), "{err}");
    assert!(err.contains("ca.crt exists"), "{err}");
}

/// The README's "A configuration, in short" example compiles: its bindings,
/// authorities, platforms and caches are what provgate accepts (the files it
/// points at are swapped for the kit's, since they only exist in a cluster).
#[test]
fn the_readme_configuration_example_compiles() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let at = readme
        .find("A configuration, in short")
        .expect("README has the configuration example");
    let rest = &readme[at..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = rest[start..]
        .find("\n```")
        .expect("unterminated yaml block");
    let example = &rest[start..start + len];
    let dir = tempfile::tempdir().unwrap();
    let creds = crate::common::server::kit_docker_config(dir.path(), &[]);
    let root = crate::common::kit::kit().trusted_root();
    let yaml: String = example
        .lines()
        .map(|l| {
            if l.starts_with("server:") {
                "server: {listen: 127.0.0.1:0}".to_owned()
            } else if l.starts_with("trust:") {
                format!(
                    "trust: {{publicGood: true, github: true, roots: [{{name: corp, path: \"{}\"}}]}}",
                    root.display()
                )
            } else if l.starts_with("credentials:") {
                format!(
                    "credentials: [{{name: team-a, file: \"{}\", namespaces: [\"team-a-*\"]}}]",
                    creds.display()
                )
            } else if l.contains("caFile: /trust/corp-ca.pem") {
                "    registry.corp: {mirrors: [mirror.corp]}".to_owned()
            } else if l.starts_with("contracts:") {
                "contracts: {builtin: true}".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let config = provgate::config::Config::load(&path)
        .unwrap_or_else(|e| panic!("the README example does not compile: {e}\n{yaml}"));
    assert_eq!(config.bindings.len(), 2);
    assert!(config.world_trusting().is_empty());
}
