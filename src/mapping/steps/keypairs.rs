//! Key pair steps: ImportKeyPair (registerSSHKeyPair answers 431 for a taken name, a key held
//! under another name and a bad key alike, so the step asks which), the DeleteKeyPair resolver and
//! DescribeKeyPairs' names. CreateKeyPair is data (mappings/keypairs.toml).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::super::exec::{Ctx, Prepared};
use super::common::{field_text, is_param_error};
use super::security_groups::keep_named;
use crate::base::{Code, Ec2Error};
use crate::ec2::Params;
use crate::ids::{self, Kind};

fn duplicate(name: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidKeyPairDuplicate, format!("The keypair '{name}' already exists."))
}

fn key_name(p: &Params) -> Result<&str, Ec2Error> {
    let name = p.require("KeyName")?;
    if name.len() > 255 || name.chars().any(|c| c.is_control()) {
        return Err(Ec2Error::invalid_value("KeyName", name, "Up to 255 printable characters are allowed."));
    }
    Ok(name)
}

async fn find_by_name(ctx: &Ctx<'_>, name: &str) -> Result<Option<Value>, Ec2Error> {
    let l = ctx.list("listSSHKeyPairs", &[("name".into(), name.to_string())], "sshkeypair").await?;
    Ok(l.into_iter().find(|k| field_text(k, "name").as_deref() == Some(name)))
}

/// An OpenSSH public key line (`type base64 [comment]`) whose blob names the same type.
fn openssh_line(text: &str) -> Option<String> {
    let line = text.trim();
    let mut parts = line.split_whitespace();
    let kind = parts.next()?;
    let blob = B64.decode(parts.next()?).ok()?;
    if !matches!(kind, "ssh-rsa" | "ssh-ed25519" | "ssh-dss") && !kind.starts_with("ecdsa-sha2-") {
        return None;
    }
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    (blob.get(4..4 + len)? == kind.as_bytes() && blob.len() > 4 + len).then(|| line.to_string())
}

/// CloudStack's fingerprint: MD5 of the key blob, lowercase hex with colons.
fn md5_fingerprint(line: &str) -> Option<String> {
    use md5::{Digest, Md5};
    let blob = B64.decode(line.split_whitespace().nth(1)?).ok()?;
    Some(Md5::digest(&blob).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

fn bad_format() -> Ec2Error {
    Ec2Error::new(Code::InvalidKeyPairFormat, "Key is not in valid OpenSSH public key format")
}

pub async fn import(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let name = key_name(p)?;
    let material = p.require("PublicKeyMaterial")?;
    // The wire value is base64 of the key file; a client that sent the line itself works too.
    let clean: String = material.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = B64.decode(&clean).ok().and_then(|b| String::from_utf8(b).ok());
    let line = decoded.as_deref().and_then(openssh_line).or_else(|| openssh_line(material)).ok_or_else(bad_format)?;
    let params = [("name".to_string(), name.to_string()), ("publickey".to_string(), line)];
    match ctx.call_raw("registerSSHKeyPair", &params).await {
        Ok(v) => {
            ctx.forget_cached("listSSHKeyPairs");
            Ok(v.get("keypair").cloned().unwrap_or(v))
        }
        Err(e) if is_param_error(&e) => {
            if find_by_name(ctx, name).await?.is_some() {
                return Err(duplicate(name));
            }
            // CloudStack also refuses a second name for the same key.
            let all = ctx.list("listSSHKeyPairs", &[], "sshkeypair").await?;
            let fp = md5_fingerprint(&params[1].1);
            if let Some(other) =
                fp.and_then(|fp| all.iter().find(|k| field_text(k, "fingerprint").as_deref() == Some(fp.as_str())))
            {
                return Err(Ec2Error::new(
                    Code::InvalidKeyPairDuplicate,
                    format!(
                        "The keypair '{name}' cannot be imported: this cloud already holds the same key as '{}'.",
                        field_text(other, "name").unwrap_or_default()
                    ),
                ));
            }
            Err(bad_format())
        }
        Err(e) => Err(ctx.err(e)),
    }
}

/// Resolver `key_pair_name:<IdParam>` (DeleteKeyPair): the key pair's name, given, or else
/// the name of the caller's key pair whose EC2 id the request's `<IdParam>` names; nothing when
/// the caller has no such key pair (EC2 answers success for one that is not there). Neither
/// given: MissingParameter of the name.
pub async fn r_key_pair_name(ctx: &Ctx<'_>, input: Option<String>, id_param: &str, param: &str) -> Out {
    if let Some(name) = input {
        return Ok(vec![name]);
    }
    let Some(id) = ctx.req.params.get(id_param).filter(|v| !v.is_empty()) else {
        return Err(Ec2Error::missing_parameter(param));
    };
    if !ids::is_well_formed(Kind::KeyPair, id) {
        return Err(Ec2Error::invalid_value(id_param, id, "Expecting \"key-...\"."));
    }
    let all = ctx.list("listSSHKeyPairs", &[], "sshkeypair").await?;
    Ok(all
        .iter()
        .find(|k| field_text(k, "id").is_some_and(|u| ids::ec2_id(Kind::KeyPair, &u) == id))
        .and_then(|k| field_text(k, "name"))
        .into_iter()
        .collect())
}

type Out = Result<Vec<String>, Ec2Error>;

/// DescribeKeyPairs `KeyName.N`.
pub async fn names(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let wanted = ctx.req.params.list("KeyName");
    keep_named(items, &wanted, "name", Code::InvalidKeyPairNotFound, "key pair")
}
