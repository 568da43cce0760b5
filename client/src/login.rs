//! `cauda login`, `cauda logout` and `cauda whoami`: a user hands `cauda` their token once
//! (on stdin or from a file, never on the command line where `ps` shows it), the daemon
//! confirms it (WhoAmI), and it is stored for that daemon address in the credentials file;
//! later commands send it when `CAUDA_TOKEN` is not set.

use std::io::Read;
use std::path::PathBuf;

use cauda_proto::v1::WhoAmIRequest;

use crate::connect::{bearer, connect, connect_with, token_source};
use crate::credentials;
use crate::exit::CliError;

/// Longest token accepted, in bytes.
const MAX_TOKEN_BYTES: u64 = 4096;

/// Arguments of `cauda login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Read the token from this file instead of standard input.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Arguments of `cauda logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {}

/// Arguments of `cauda whoami`.
#[derive(Debug, clap::Args)]
pub struct WhoAmIArgs {}

/// Runs `cauda login`: check the token with the daemon, then store it for `addr`.
pub async fn login(addr: &str, args: LoginArgs) -> Result<(), CliError> {
    let token = read_token(args.token_file.as_ref())?;
    let mut client = connect_with(addr, bearer(Some(&token), "the token")?).await?;
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    if !me.auth_enabled {
        return crate::cmd::emit(&format!(
            "the daemon at {addr} does not check tokens (no [auth]); nothing stored\n"
        ));
    }
    let path = credentials::path().ok_or_else(|| {
        CliError::Usage(
            "neither XDG_CONFIG_HOME nor HOME is set: nowhere to store the token".into(),
        )
    })?;
    let mut tokens = credentials::load(&path)?;
    tokens.insert(credentials::key(addr), token);
    credentials::save(&path, &tokens)?;
    crate::cmd::emit(&format!(
        "logged in to {addr} as {}{} (token stored in {})\n",
        me.user,
        if me.admin { " (admin)" } else { "" },
        path.display()
    ))
}

/// Runs `cauda logout`: forget the token stored for `addr`.
pub fn logout(addr: &str, _args: LogoutArgs) -> Result<(), CliError> {
    let path = credentials::path();
    let Some(path) = path.filter(|p| p.exists()) else {
        return crate::cmd::emit(&format!("not logged in to {addr}\n"));
    };
    let mut tokens = credentials::load(&path)?;
    if tokens.remove(&credentials::key(addr)).is_none() {
        return crate::cmd::emit(&format!("not logged in to {addr}\n"));
    }
    credentials::save(&path, &tokens)?;
    crate::cmd::emit(&format!("logged out of {addr}\n"))
}

/// Runs `cauda whoami`: who the daemon takes this client for, and where the token came from.
pub async fn whoami(addr: &str, _args: WhoAmIArgs) -> Result<(), CliError> {
    let source = token_source(addr)?.map(|(_, source)| source);
    let mut client = connect(addr).await?;
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let text = if !me.auth_enabled {
        format!("{} (the daemon at {addr} does not check tokens)\n", me.user)
    } else {
        format!(
            "{}{} (token from {})\n",
            me.user,
            if me.admin { " (admin)" } else { "" },
            source.unwrap_or_else(|| "nowhere".into())
        )
    };
    crate::cmd::emit(&text)
}

/// The token: the first line of `file` or of standard input, trimmed, bounded in size.
fn read_token(file: Option<&PathBuf>) -> Result<String, CliError> {
    let mut text = String::new();
    let (what, read) = match file {
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|source| CliError::Io {
                path: path.clone(),
                source,
            })?;
            (
                path.display().to_string(),
                f.take(MAX_TOKEN_BYTES + 1).read_to_string(&mut text),
            )
        }
        None => (
            "standard input".to_string(),
            std::io::stdin()
                .take(MAX_TOKEN_BYTES + 1)
                .read_to_string(&mut text),
        ),
    };
    read.map_err(|e| CliError::Usage(format!("reading the token from {what}: {e}")))?;
    if text.len() as u64 > MAX_TOKEN_BYTES {
        return Err(CliError::Usage(format!(
            "the token in {what} is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "no token in {what} (e.g. `echo \"$TOKEN\" | cauda login`)"
        )));
    }
    Ok(token)
}
