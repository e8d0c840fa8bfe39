//! `bazaar plugin`: the partner's and the operator's side of the plugin
//! platform from a terminal.
//!
//! `keygen` and `sign` work on local files only: a publisher's secret key
//! never leaves the machine it was made on. The other commands call a
//! node's HTTP API with a bearer token, print what the node answered, and
//! exit non-zero with the node's own error message when it refused.
//!
//! The HTTP client is the hyper client the binary already carries for its
//! load generator: one HTTP/1.1 request per command over plain TCP, since a
//! node listens on plain HTTP (on loopback by default).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bazaar_registry::{Package, PublisherSecret};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Where a node listens unless told otherwise: `bazaar serve`'s default.
pub const URL_DEFAULT: &str = "http://127.0.0.1:1111";

/// Longest wait for a node's answer. Installing compiles the component on
/// the node, which takes seconds for the megabytes of a Python or
/// JavaScript component on a small machine; five minutes covers the
/// largest component the node accepts with room to spare.
pub const REQUEST_TIMEOUT_MS: u64 = 300_000;

/// Largest answer read from a node: the marketplace listing carries every
/// plugin's manifest data, a few megabytes at the registry's limits;
/// anything far larger is not a Bazaar node talking.
pub const RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// The `bazaar plugin` subcommands.
#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Generate a publisher key pair: writes the secret key to a new file
    /// (mode 0600) and prints the public key to give to operators.
    Keygen {
        /// The secret key file to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package directory (plugin.toml and plugin.wasm): writes <dir>/plugin.sig.
    Sign {
        /// The package directory.
        dir: PathBuf,
        /// The publisher's secret key file (from `bazaar plugin keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Install a signed package directory on a node.
    Install {
        /// The package directory (plugin.toml, plugin.wasm, plugin.sig).
        dir: PathBuf,
        /// The node.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Trust a publisher's public key on a node (operators).
    Trust {
        /// The publisher id, as in its manifests' `publisher`.
        publisher: String,
        /// Its public key: 64 lowercase hex characters.
        public_key: String,
        /// The node.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the plugins installed on a node: versions, the active one, capabilities.
    List {
        /// The node.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Make an installed version the active one (operators); calls in flight finish on the old one.
    Activate {
        /// The plugin id.
        id: String,
        /// The version to activate.
        version: String,
        /// The node.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Go back to the version that was active before the current one (operators).
    Rollback {
        /// The plugin id.
        id: String,
        /// The node.
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Which node to call, and as whom.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's base URL.
    #[arg(long, env = "BAZAAR_URL", default_value = URL_DEFAULT)]
    url: String,
    /// Bearer token (operator, or a partner token for its own plugins).
    #[arg(long, env = "BAZAAR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs a `bazaar plugin` subcommand.
pub fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Keygen { out } => keygen(&out),
        PluginCommand::Sign { dir, key } => sign(&dir, &key),
        PluginCommand::Install { dir, node } => install(&dir, &node),
        PluginCommand::Trust { publisher, public_key, node } => {
            let path = format!("/v1/publishers/{}", path_segment("publisher", &publisher)?);
            let trusted = call(&node, Method::PUT, &path, Some(json!({"public_key": public_key})))?;
            println!("trusted publisher {publisher}");
            print_json(&trusted)
        }
        PluginCommand::List { node } => {
            let listing = call(&node, Method::GET, "/v1/plugins", None)?;
            print_json(&listing)
        }
        PluginCommand::Activate { id, version, node } => {
            let path = format!("/v1/plugins/{}/activate", path_segment("plugin id", &id)?);
            let swap = call(&node, Method::POST, &path, Some(json!({"version": version})))?;
            print_swap(&id, &swap);
            Ok(())
        }
        PluginCommand::Rollback { id, node } => {
            let path = format!("/v1/plugins/{}/rollback", path_segment("plugin id", &id)?);
            let swap = call(&node, Method::POST, &path, None)?;
            print_swap(&id, &swap);
            Ok(())
        }
    }
}

/// Writes a new secret key file readable by its owner only and prints the
/// public key.
fn keygen(out: &Path) -> anyhow::Result<()> {
    let secret = PublisherSecret::generate();
    let mut options = std::fs::OpenOptions::new();
    // Never overwrite: a replaced key silently orphans every package
    // signed with the old one.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(out).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists already; keygen never overwrites a key", out.display())
        }
        _ => anyhow::anyhow!("creating {}: {error}", out.display()),
    })?;
    file.write_all(secret.to_key_file().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    println!("secret key written to {} (keep it private)", out.display());
    println!("public key: {}", secret.public_key());
    println!("an operator trusts it with: bazaar plugin trust <publisher> {}", secret.public_key());
    Ok(())
}

/// Signs the package in `dir` with the key file `key`.
fn sign(dir: &Path, key: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(key)
        .with_context(|| format!("reading the secret key file {}", key.display()))?;
    let secret = PublisherSecret::parse(&text)
        .with_context(|| format!("the secret key file {}", key.display()))?;
    let signature = Package::write_signature(dir, &secret)?;
    println!(
        "signed {}: {}",
        dir.display(),
        dir.join(bazaar_registry::SIGNATURE_FILE_NAME).display()
    );
    println!("signature: {signature}");
    println!("public key: {}", secret.public_key());
    Ok(())
}

/// Posts the package in `dir` to the node.
fn install(dir: &Path, node: &NodeArgs) -> anyhow::Result<()> {
    let package = Package::read_dir(dir)?;
    let Some(signature) = &package.signature else {
        bail!(
            "{} has no plugin.sig: sign the package first with `bazaar plugin sign {} --key <file>`",
            dir.display(),
            dir.display()
        );
    };
    let body = json!({
        "manifest": package.manifest_text,
        "component": base64::engine::general_purpose::STANDARD.encode(&package.component),
        "signature": signature.to_string(),
    });
    let installed = call(node, Method::POST, "/v1/plugins", Some(body))?;
    let id = installed["id"].as_str().unwrap_or("?");
    let version = installed["version"].as_str().unwrap_or("?");
    let what = if installed["created"].as_bool() == Some(false) {
        "already installed"
    } else {
        "installed"
    };
    println!("{what}: {id} {version}");
    print_json(&installed)
}

/// Prints a hot swap's outcome.
fn print_swap(id: &str, swap: &Value) {
    let from = swap["from"].as_str().unwrap_or("none");
    let to = swap["to"].as_str().unwrap_or("?");
    let elapsed_us = swap["elapsed_us"].as_u64().unwrap_or(0);
    println!("{id}: {from} -> {to} (swapped in {elapsed_us} us)");
}

/// Prints a JSON document for people.
fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `text` as one path segment: identifiers are plain ASCII, so anything
/// that would need escaping is refused here rather than sent.
fn path_segment<'a>(what: &str, text: &'a str) -> anyhow::Result<&'a str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if text.is_empty() || !text.chars().all(plain) {
        bail!("{what} {text:?} may hold only ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(text)
}

/// A node's base URL taken apart: host and port to connect to, and the
/// `Host` header.
struct Endpoint {
    /// `host:port` to connect to.
    address: String,
    /// The authority as written, for the `Host` header.
    authority: String,
}

/// Parses `http://host[:port]` (a trailing `/` is allowed).
fn endpoint(url: &str) -> anyhow::Result<Endpoint> {
    let uri: Uri = url.parse().with_context(|| format!("{url:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => bail!(
            "{url:?}: only http:// is supported ({other}:// is not): a node serves plain HTTP; put TLS in a proxy in front of it"
        ),
        None => bail!("{url:?} has no scheme: write it as http://host:port"),
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("{url:?}: give the node's base URL only, such as {URL_DEFAULT}");
    }
    let authority = uri.authority().with_context(|| format!("{url:?} names no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(Endpoint {
        address: format!("{}:{port}", authority.host()),
        authority: authority.as_str().to_string(),
    })
}

/// Sends one request to the node and returns its JSON answer; a refusal
/// becomes an error carrying the node's status, code and message.
fn call(node: &NodeArgs, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let Some(token) = node.token.as_deref() else {
        bail!(
            "no token: pass --token or set BAZAAR_TOKEN (a node writes its first operator token to <data-dir>/operator-token)"
        );
    };
    let endpoint = endpoint(&node.url)?;
    let body = match body {
        Some(body) => Bytes::from(serde_json::to_vec(&body)?),
        None => Bytes::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let exchange = send(&endpoint, token, method.clone(), path, body);
    let (status, bytes) = runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), exchange).await
        })
        .map_err(|_| {
            anyhow::anyhow!(
                "{method} {path}: no answer from {} within {REQUEST_TIMEOUT_MS} ms",
                node.url
            )
        })?
        .with_context(|| format!("{method} {path} on {}", node.url))?;
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes).chars().take(1000).collect())
        })
    };
    if !status.is_success() {
        let code = value["error"]["code"].as_str().unwrap_or("");
        let message =
            value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_string);
        bail!("the node refused {method} {path}: {} {code}: {message}", status.as_u16());
    }
    Ok(value)
}

/// One HTTP/1.1 exchange over a fresh connection.
async fn send(
    endpoint: &Endpoint,
    token: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(&endpoint.address).await.with_context(|| {
        format!("connecting to {} (is `bazaar serve` running?)", endpoint.address)
    })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &endpoint.authority)
        .header("authorization", format!("Bearer {token}"));
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| anyhow::anyhow!("reading the answer: {error}"))?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gives_the_address_to_connect_to() {
        let parsed = endpoint("http://127.0.0.1:1111/").unwrap();
        assert_eq!(
            (parsed.address.as_str(), parsed.authority.as_str()),
            ("127.0.0.1:1111", "127.0.0.1:1111")
        );
        assert_eq!(endpoint("http://node.local").unwrap().address, "node.local:80");
    }

    #[test]
    fn urls_the_client_cannot_serve_are_refused_with_the_reason() {
        let https = endpoint("https://node.example").err().unwrap().to_string();
        assert!(https.contains("only http://"), "{https}");
        let path = endpoint("http://127.0.0.1:1111/v1").err().unwrap().to_string();
        assert!(path.contains("base URL"), "{path}");
        assert!(endpoint("127.0.0.1:1111").is_err());
    }

    #[test]
    fn path_segments_are_plain_identifiers() {
        assert_eq!(path_segment("plugin id", "bulk-discount").unwrap(), "bulk-discount");
        assert!(path_segment("plugin id", "../tokens").is_err());
        assert!(path_segment("plugin id", "").is_err());
    }
}
