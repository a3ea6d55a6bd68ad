//! The sign-in state machine (`pusher:signin`, PROTOCOL.md §6.2) as one enum.

use hush_protocol::UserId;

/// Where the client's sign-in stands. A wanted sign-in is redone after every
/// reconnect; a failed one waits for the next reconnect or the next
/// [`Client::signin`](crate::Client::signin).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Signin {
    /// Never asked for.
    #[default]
    Off,
    /// Asked for; not in progress on the current connection (offline, or the
    /// last attempt failed).
    Wanted,
    /// The authorizer's user authentication runs for connection `conn`.
    Authenticating {
        /// The connection it was asked for.
        conn: u64,
    },
    /// `pusher:signin` was sent; waiting for `pusher:signin_success` (or a
    /// `pusher:error`, the server's refusal).
    Sent,
    /// Signed in as this user on the current connection.
    SignedIn(UserId),
}

impl Signin {
    /// The signed-in user.
    pub(crate) fn user(&self) -> Option<&UserId> {
        match self {
            Self::SignedIn(u) => Some(u),
            _ => None,
        }
    }

    /// The state after the connection was lost: anything asked for becomes
    /// [`Signin::Wanted`] again.
    pub(crate) fn after_disconnect(&self) -> Self {
        match self {
            Self::Off => Self::Off,
            _ => Self::Wanted,
        }
    }
}
