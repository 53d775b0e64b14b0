//! `[web]`: where `exim-pilot serve` listens and who may look, as the
//! rest of the program reads it (the checks are in `build.rs`).

use std::time::Duration;

use super::raw::{RawWeb, RawWebUser};

/// `[web]`: where `exim-pilot serve` listens, and who may look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The address; loopback unless configured otherwise (which needs
    /// authentication).
    pub listen: std::net::SocketAddr,
    /// Who may look.
    pub auth: WebAuth,
    /// How long a sign-in lasts.
    pub session_lifetime: Duration,
    /// Whether session cookies are `Secure` (sent over TLS only): set it
    /// when users reach the view through a TLS proxy.
    pub secure_cookies: bool,
    /// Host names the view is reached by besides its address (and
    /// `localhost` on loopback): a request naming another is refused.
    pub server_names: Vec<String>,
}

/// `[web] auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebAuth {
    /// `"none"`: anyone who can connect is an admin (loopback only).
    None,
    /// `"users"`: these sign in with a password.
    Users(Vec<WebUser>),
    /// `"proxy"`: a reverse proxy at one of `addresses` names the user in
    /// the `header`; each gets `role`.
    Proxy {
        /// The header carrying the user name (e.g. `X-Remote-User`).
        header: String,
        /// Where the proxy connects from; others are refused.
        addresses: Vec<std::net::IpAddr>,
        /// The role of every user the proxy names.
        role: WebRole,
    },
}

/// What a user of the web view may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRole {
    /// Addresses masked (`a***@example.com`).
    Viewer,
    /// Everything.
    Admin,
}

impl WebRole {
    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            WebRole::Viewer => "viewer",
            WebRole::Admin => "admin",
        }
    }
}

/// `[[web.users]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// The sign-in name.
    pub name: String,
    /// An argon2 PHC string (`exim-pilot serve --hash-password`).
    pub password_hash: String,
    /// What they may see.
    pub role: WebRole,
}

impl WebConfig {
    pub(super) fn to_raw(&self) -> RawWeb {
        let (auth, users, header, addresses, role) = match &self.auth {
            WebAuth::None => ("none", None, None, None, None),
            WebAuth::Users(users) => (
                "users",
                Some(
                    users
                        .iter()
                        .map(|user| RawWebUser {
                            name: Some(user.name.clone()),
                            password_hash: Some(user.password_hash.clone()),
                            role: Some(user.role.name().to_owned()),
                        })
                        .collect(),
                ),
                None,
                None,
                None,
            ),
            WebAuth::Proxy {
                header,
                addresses,
                role,
            } => (
                "proxy",
                None,
                Some(header.clone()),
                Some(addresses.iter().map(ToString::to_string).collect()),
                Some(role.name().to_owned()),
            ),
        };
        RawWeb {
            listen: Some(self.listen.to_string()),
            auth: Some(auth.to_owned()),
            session_lifetime: Some(humantime::format_duration(self.session_lifetime).to_string()),
            secure_cookies: Some(self.secure_cookies),
            server_names: Some(self.server_names.clone()),
            proxy_user_header: header,
            proxy_addresses: addresses,
            proxy_role: role,
            users,
        }
    }
}

/// Whether `text` is a password hash `serve` can check (PHC format). A
/// build without the web view never checks one, and takes any.
pub(super) fn is_password_hash(text: &str) -> bool {
    #[cfg(feature = "web")]
    return argon2::PasswordHash::new(text).is_ok();
    #[cfg(not(feature = "web"))]
    return !text.is_empty();
}
