//! Who is calling the helper: the kernel's answer (`SO_PEERCRED` on the
//! connection), never the request's. Only the web view's user may name
//! another actor (the signed-in user, its role and the client's address);
//! anyone else the socket lets in is named by its own uid and acts as an
//! admin, as Exim's own admin groups do.

use std::os::fd::AsFd;

use crate::config::QueueConfig;
use crate::queue::record::Caller;
use crate::queue::request::{Actor, Request};

/// The process at the other end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its uid.
    pub uid: u32,
    /// Its pid.
    pub pid: i32,
    /// Its user name, when the password file has the uid.
    pub user: String,
}

impl Peer {
    /// The peer of the connected socket `socket`.
    pub fn of(socket: impl AsFd) -> std::io::Result<Peer> {
        let credentials = rustix::net::sockopt::socket_peercred(socket)?;
        let uid = credentials.uid.as_raw();
        Ok(Peer {
            uid,
            pid: credentials.pid.as_raw_nonzero().get(),
            user: user_name(uid).unwrap_or_default(),
        })
    }

    /// Who the request is from: the web view's claimed actor when the
    /// peer is the web view's user, the peer itself otherwise.
    pub fn caller(&self, config: &QueueConfig, request: &Request) -> Caller {
        let from_web = !self.user.is_empty() && self.user == config.web_user;
        let actor = if from_web {
            request.actor.clone()
        } else {
            Actor {
                user: if self.user.is_empty() {
                    format!("uid {}", self.uid)
                } else {
                    self.user.clone()
                },
                role: "admin".to_owned(),
                auth: "cli".to_owned(),
                client_ip: String::new(),
            }
        };
        Caller {
            peer_uid: self.uid,
            peer_user: self.user.clone(),
            peer_pid: self.pid,
            actor,
            origin: if from_web { "web" } else { "cli" }.to_owned(),
        }
    }
}

/// The name of `uid` in /etc/passwd (the helper runs without NSS modules
/// beyond the files; a uid without a line is named by its number).
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let line_uid: u32 = fields.nth(1)?.parse().ok()?;
        (line_uid == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_names_the_peer_and_root_is_uid_0() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&ours).unwrap();
        drop(theirs);
        assert_eq!(peer.pid, i32::try_from(std::process::id()).unwrap());
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
