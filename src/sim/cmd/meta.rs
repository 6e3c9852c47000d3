//! Catalogue and service commands: zones, offerings, OS types, capabilities, regions, jobs.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::{Lookup, Model, keyword_match};
use super::super::render::*;
use super::{CmdSpec, Ctx, read, single};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listZones", "org.apache.cloudstack.api.command.user.zone.ListZonesCmd", list_zones),
        read(
            "listServiceOfferings",
            "org.apache.cloudstack.api.command.user.offering.ListServiceOfferingsCmd",
            list_service_offerings,
        ),
        read(
            "listDiskOfferings",
            "org.apache.cloudstack.api.command.user.offering.ListDiskOfferingsCmd",
            list_disk_offerings,
        ),
        read("listOsTypes", "org.apache.cloudstack.api.command.user.guest.ListGuestOsCmd", list_os_types),
        read(
            "listOsCategories",
            "org.apache.cloudstack.api.command.user.guest.ListGuestOsCategoriesCmd",
            list_os_categories,
        ),
        read(
            "listCapabilities",
            "org.apache.cloudstack.api.command.user.config.ListCapabilitiesCmd",
            list_capabilities,
        ),
        read("listRegions", "org.apache.cloudstack.api.command.user.region.ListRegionsCmd", list_regions),
        read("queryAsyncJobResult", "org.apache.cloudstack.api.command.user.job.QueryAsyncJobResultCmd", query_job),
        read("listAsyncJobs", "org.apache.cloudstack.api.command.user.job.ListAsyncJobsCmd", list_jobs),
    ]
}

fn list_zones(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.zones, "id")? else {
        return list::list(p, "zone", Vec::<()>::new(), |_| json!({}));
    };
    let name = p.opt("name");
    let nt = p.opt("networktype");
    let available = p.opt_bool("available");
    let kw = p.opt("keyword");
    let admin = ctx.caller.is_root_admin();
    let items: Vec<_> = m
        .zones
        .iter()
        .filter(|(s, z)| {
            id.is_none_or(|i| i == *s)
                && name.is_none_or(|n| z.name == n)
                && nt.is_none_or(|n| z.networktype.eq_ignore_ascii_case(n))
                && keyword_match(kw, &[&z.name, &z.description])
                // Disabled zones are hidden from users (and from `available=true`).
                && (admin && available != Some(true) || z.allocationstate == "Enabled")
        })
        .map(|(_, z)| z)
        .collect();
    list::list(p, "zone", items, zone_json)
}

fn list_service_offerings(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.service_offerings, "id")? else {
        return list::list(p, "serviceoffering", Vec::<()>::new(), |_| json!({}));
    };
    // With virtualmachineid: the offerings the VM could change to (all but its own).
    let vm_offering = match ctx.find(&m.vms, "virtualmachineid")? {
        Some(Lookup::Live(s)) => {
            let vm = m.vms.live(s)?;
            m.check_owned(&ctx.caller, vm)?;
            Some(vm.offering)
        }
        _ => None,
    };
    if p.flag("issystem") {
        return Ok(json!({}));
    }
    let name = p.opt("name");
    let kw = p.opt("keyword");
    let items: Vec<_> = m
        .service_offerings
        .iter()
        .filter(|(s, o)| {
            id.is_none_or(|i| i == *s)
                && name.is_none_or(|n| o.name == n)
                && keyword_match(kw, &[&o.name, &o.displaytext])
                && vm_offering != Some(*s)
        })
        .map(|(_, o)| o)
        .collect();
    list::list(p, "serviceoffering", items, service_offering_json)
}

fn list_disk_offerings(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.disk_offerings, "id")? else {
        return list::list(p, "diskoffering", Vec::<()>::new(), |_| json!({}));
    };
    let name = p.opt("name");
    let kw = p.opt("keyword");
    let items: Vec<_> = m
        .disk_offerings
        .iter()
        .filter(|(s, o)| {
            id.is_none_or(|i| i == *s)
                && name.is_none_or(|n| o.name == n)
                && keyword_match(kw, &[&o.name, &o.displaytext])
        })
        .map(|(_, o)| o)
        .collect();
    list::list(p, "diskoffering", items, disk_offering_json)
}

fn list_os_types(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.os_types, "id")? else {
        return list::list(p, "ostype", Vec::<()>::new(), |_| json!({}));
    };
    let cat = p.opt("oscategoryid");
    let desc = p.opt("description");
    let kw = p.opt("keyword");
    let items: Vec<_> = m
        .os_types
        .iter()
        .filter(|(s, o)| {
            id.is_none_or(|i| i == *s)
                && cat.is_none_or(|c| o.category_id == c)
                && desc.is_none_or(|d| o.description.to_lowercase().contains(&d.to_lowercase()))
                && keyword_match(kw, &[&o.description])
        })
        .map(|(_, o)| o)
        .collect();
    list::list(p, "ostype", items, ostype_json)
}

fn list_os_categories(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let mut seen = std::collections::BTreeMap::new();
    for o in m.os_types.values() {
        seen.entry(o.category_id.clone()).or_insert_with(|| o.category_name.clone());
    }
    let items: Vec<_> = seen.into_iter().collect();
    list::list(&ctx.p, "oscategory", items, |(id, name)| json!({"id": id, "name": name}))
}

fn list_capabilities(ctx: &Ctx, _m: &Model) -> SimResult<Value> {
    Ok(single(
        "capability",
        json!({
            "cloudstackversion": ctx.cfg.settings.cloudstack_version,
            "securitygroupsenabled": true,
            "userpublictemplateenabled": true,
            "supportELB": "false",
            "projectinviterequired": false,
            "allowusercreateprojects": true,
            "customdiskofferingminsize": 1,
            "customdiskofferingmaxsize": 1024,
            "regionsecondaryenabled": false,
            "kvmsnapshotenabled": true,
            "allowuserviewdestroyedvm": ctx.cfg.settings.allow_user_view_destroyed_vm,
            "allowuserexpungerecovervm": ctx.cfg.settings.allow_user_expunge,
            "apilimitinterval": 1,
            "apilimitmax": 25000,
            "dynamicrolesenabled": true,
            "defaultuipagesize": list::DEFAULT_PAGE_SIZE
        }),
    ))
}

fn list_regions(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let id = p.int("id")?;
    let region = json!({"id": 1, "name": "Local", "endpoint": m.region_endpoint, "gslbserviceenabled": true, "portableipserviceenabled": false});
    let keep = id.is_none_or(|i| i == 1)
        && p.opt("name").is_none_or(|n| n == "Local")
        && keyword_match(p.opt("keyword"), &["Local"]);
    list::list(p, "region", if keep { vec![region] } else { vec![] }, |r| r)
}

fn query_job(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    Ok(job_json(m, m.jobs.live(ctx.owned(m, &m.jobs, "jobid")?)?))
}

fn list_jobs(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let scope = m.scope(&ctx.caller, &ctx.p)?;
    let kw = ctx.p.opt("keyword");
    let since = match ctx.p.opt("startdate") {
        Some(d) => Some(
            super::super::auth::parse_expires(d)
                .or_else(|| {
                    time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                        .ok()
                        .map(|d| d.midnight().assume_utc())
                })
                .ok_or_else(|| SimError::bad_value(&ctx.p.cmd, "startdate", d))?,
        ),
        None => None,
    };
    let items: Vec<_> = m
        .jobs
        .values()
        .filter(|j| {
            scope.sees(j.account)
                && keyword_match(kw, &[j.cmd])
                && since.is_none_or(|s| super::super::auth::parse_expires(&j.created).is_none_or(|c| c >= s))
        })
        .collect();
    list::list(&ctx.p, "asyncjobs", items, |j| job_json(m, j))
}
