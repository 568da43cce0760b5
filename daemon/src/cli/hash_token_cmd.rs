//! `caudad hash-token`: reads a bearer token on stdin and prints its SHA-256 in hex, the value
//! an `[[auth.users]]` entry's `token_sha256` takes (the config never holds a token itself).

use std::io::Read;

use anyhow::Context;

#[derive(clap::Args)]
pub struct HashTokenArgs {}

pub fn run(_args: HashTokenArgs) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .context("reading the token from stdin")?;
    let token = text.trim();
    anyhow::ensure!(!token.is_empty(), "no token on stdin");
    anyhow::ensure!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "a token is printable ASCII without spaces"
    );
    println!("{}", crate::store::sha256_hex(token.as_bytes()));
    Ok(())
}
