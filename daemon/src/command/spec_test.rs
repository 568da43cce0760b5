//! Command-run specs: expansion over a grid, placeholders, references, and errors that name the
//! key and line.

use super::*;
use crate::command::DEFAULT_REPORT_TIMEOUT_S;

const GRID: &str = r#"name = "ldam-official"
method = "ldam-drw"

[command]
argv = ["python3", "train.py", "--seed", "{seed}", "--imb", "{ratio}", "--loss={method}", "--out", "{run_dir}/out", "--lr={train.lr}"]
env = { OMP_NUM_THREADS = "2", TAG = "{name}" }

[train]
seed = 1
epochs = 4
lr = 0.1

[data]
imbalance = { profile = "exp", ratio = 100 }

[resources]
gpu_share = 0.5

[sweep]
"train.seed" = [1, 2]
"data.imbalance.ratio" = [10, 100]
"#;

#[test]
fn a_command_key_is_found_however_it_is_written() {
    for text in [
        "[command]\nrun = \"x\"\n",
        "[ command ]\nrun = \"x\"\n",
        "[\"command\"]\nrun = \"x\"\n",
        "command.run = \"x\"\n",
        "command = { run = \"x\" }\n",
        "[\"\\u0063ommand\"]\nrun = \"x\"\n",
        "\"\\u0063ommand\" = { run = \"x\" }\n",
    ] {
        assert!(is_command_spec(text), "{text}");
    }
    for text in [
        "name = \"x\"\n[data]\nformat = \"digits\"\n",
        "name = \"command\"\n",
        "name = \"x\\ty\"\n[data]\ncommand = 1\n",
        "[command\n",
    ] {
        assert!(!is_command_spec(text), "{text}");
    }
}

#[test]
fn a_grid_expands_into_filled_commands() {
    assert!(is_command_spec(GRID));
    assert!(!is_command_spec(
        "name = \"x\"\n[data]\nformat = \"digits\"\n"
    ));
    let (name, report, points) = expand("g.toml", GRID).unwrap();
    assert_eq!(name, "ldam-official");
    assert!(!report.relative_accuracy);
    assert_eq!(points.len(), 4);
    let run = &points[3].run;
    assert_eq!(
        run.name,
        "ldam-official/data.imbalance.ratio=100,train.seed=2"
    );
    assert_eq!(run.method, "ldam-drw");
    assert_eq!(
        run.command.argv,
        [
            "python3",
            "train.py",
            "--seed",
            "2",
            "--imb",
            "100",
            "--loss=ldam-drw",
            "--out",
            "{run_dir}/out",
            "--lr=0.1"
        ]
    );
    assert_eq!(run.command.env["TAG"], run.name);
    assert_eq!((run.seed(), run.ratio(), run.epochs()), (2, Some(100.0), 4));
    assert_eq!(run.resources.gpu_share, Some(0.5));
    assert_eq!(run.command.report_timeout_s, DEFAULT_REPORT_TIMEOUT_S);
    let hashes: std::collections::HashSet<String> =
        points.iter().map(|p| p.run.config_hash()).collect();
    assert_eq!(hashes.len(), 4, "every point is its own run");
    // Stored and read back, a run is the same run.
    let json = serde_json::to_string(run).unwrap();
    let back: CommandRun = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, run);
    assert_eq!(back.config_hash(), run.config_hash());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["train"]["seed"], 2,
        "parameters sit where an engine run has them"
    );
}

#[test]
fn relative_accuracy_plans_balanced_references_of_the_same_command() {
    let spec = GRID.replace(
        "\"--loss={method}\"",
        "\"--loss={method}\", \"--balanced={balanced}\"",
    ) + "\n[report]\nrelative_accuracy = true\n";
    let (_, _, points) = expand("g.toml", &spec).unwrap();
    let (ce, own) = points[0].references.clone().unwrap();
    assert!(ce.command.argv.contains(&"--loss=ce".to_string()));
    assert!(ce.command.argv.contains(&"--balanced=true".to_string()));
    assert!(own.command.argv.contains(&"--loss=ldam-drw".to_string()));
    assert!(
        points[0]
            .run
            .command
            .argv
            .contains(&"--balanced=false".to_string())
    );
    assert!(own.balanced() && !points[0].run.balanced());
    // Without {balanced} the references would be the run itself.
    let err = expand(
        "g.toml",
        &(GRID.to_string() + "\n[report]\nrelative_accuracy = true\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("report.relative_accuracy") && err.contains("{balanced}"),
        "{err}"
    );
}

#[test]
fn bad_specs_name_the_key_and_line() {
    let cases = [
        (
            GRID.replace("{train.lr}", "{train.lrr}"),
            "command.argv[9]",
            "line 5",
        ),
        (
            GRID.replace("{seed}", "{seed"),
            "command.argv[3]",
            "unclosed",
        ),
        (
            GRID.replace("OMP_NUM_THREADS", "CAUDA_X"),
            "command.env.CAUDA_X",
            "set by cauda",
        ),
        (
            GRID.replace("gpu_share = 0.5", "gpu_share = 2.0"),
            "resources.gpu_share",
            "out of range",
        ),
        (
            GRID.replace("[1, 2]", "[1, -2]"),
            "train.seed",
            "non-negative",
        ),
        (
            GRID.replace("argv = [\"python3\",", "argv = [\"\","),
            "command.argv",
            "program",
        ),
        (
            GRID.replace("env = {", "report_timeout_s = 0\nenv = {"),
            "command.report_timeout_s",
            "out of range",
        ),
        (
            GRID.replace("env = {", "shell = true\nenv = {"),
            "command",
            "unknown field `shell`",
        ),
        (
            format!("seed = 3\n{GRID}"),
            "seed",
            "placeholder of its own",
        ),
        (GRID.replace("[1, 2]", "[]"), "sweep.train.seed", "empty"),
        (
            GRID.replace("env = {", "cwd = \"src\"\nenv = {"),
            "command.cwd",
            "relative",
        ),
    ];
    for (text, key, says) in cases {
        let err = expand("bad.toml", &text).unwrap_err();
        let SpecError::Invalid {
            key: k, message, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(k, key, "{err}");
        assert!(message.contains(says), "{key}: {message}");
    }
    let err = expand("bad.toml", "name = \"x\"\n[command]\nargv = [\"a\"\n").unwrap_err();
    assert!(err.to_string().contains("line"), "{err}");
    let huge = format!(
        "{GRID}\n# {}\n",
        "x".repeat(cauda_plugins::spec::MAX_SPEC_BYTES)
    );
    assert!(matches!(
        expand("big.toml", &huge),
        Err(SpecError::TooLarge { .. })
    ));
}
