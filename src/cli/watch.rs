//! `milepost watch`: follow a feed in the terminal: a parcel's status (recipient token) or a
//! depot's live fleet (dispatcher token).

use anyhow::Result;
use clap::Args;
use milepost::auth::Role;

use crate::cli::connect::{endpoint, token_role, token_subject, ConnectArgs};

#[derive(Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Whose feed: a recipient's parcel or a dispatcher's depot (default: the token's role).
    #[arg(long, value_enum)]
    role: Option<Role>,
}

/// Follows the feed the token (or `--role`) names until it ends.
pub(crate) async fn watch(a: WatchArgs) -> Result<()> {
    let ep = endpoint(&a.conn)?;
    let subject = token_subject(&a.conn.token)?;
    let recipient = match a.role {
        Some(r) => r == Role::Recipient,
        None => token_role(&a.conn.token)? == Role::Recipient,
    };
    milepost::tools::watch::watch(
        &ep,
        a.conn.server,
        &a.conn.server_name,
        &a.conn.token,
        &subject,
        recipient,
    )
    .await?;
    Ok(())
}
