//! `sealmail token add|list|remove EMAIL`: app tokens over the management
//! API (`admin::routes::tokens`). `add` prints the secret once, with a
//! note that it cannot be shown again.

use hyper::Method;

use super::client::{segment, AdminClient};
use super::manage::{json_or, Failure, Output};
use super::table::render;
use super::TokenCommand;
use crate::admin::api::{TokenAdd, TokenCreated, TokenView};

pub(super) fn run(client: &AdminClient, command: &TokenCommand) -> Result<Output, Failure> {
    match command {
        TokenCommand::Add { email, name, json } => {
            let body = TokenAdd { name: name.clone() };
            let made: TokenCreated = client.json(
                Method::POST,
                &format!("/accounts/{}/tokens", segment(email)),
                Some(&body),
            )?;
            if json.json {
                return json_or(true, &made, |_| String::new());
            }
            Ok(Output::Line(format!(
                "app token {} added to {email}; its secret, shown only now:\n{}\nuse it as the IMAP password or as `Authorization: Bearer` for JMAP",
                made.token.id, made.secret
            )))
        }
        TokenCommand::List { email, json } => {
            let tokens: Vec<TokenView> = client.json(
                Method::GET,
                &format!("/accounts/{}/tokens", segment(email)),
                None::<&()>,
            )?;
            json_or(json.json, &tokens, |t| rows(t))
        }
        TokenCommand::Remove { email, id } => {
            let path = format!("/accounts/{}/tokens/{}", segment(email), segment(id));
            client.call(Method::DELETE, &path, None::<&()>)?;
            Ok(Output::Line(format!("app token {id} removed from {email}")))
        }
    }
}

fn rows(tokens: &[TokenView]) -> String {
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.created.clone(),
                t.last_used.clone().unwrap_or_else(|| "never".into()),
            ]
        })
        .collect::<Vec<_>>();
    render(&["ID", "NAME", "CREATED", "LAST USED"], &rows)
}
