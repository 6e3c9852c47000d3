//! The mapping table: the typed model (here), reading the TOML files into it (`reader`: the
//! compiled-in files overlaid by a directory) and the cross-checks once everything is read
//! (`validate`). Every problem is reported with its file and line; a table with problems is
//! never used. The format is documented in docs/mappings.md.

mod reader;
mod validate;

use std::collections::{BTreeMap, HashMap};

use crate::base::util::NameHash;

use super::expr::{Expr, Path};
use super::filter::FilterSet;
use super::toml_src::At;
use crate::base::Code;
use crate::ids::Kind;

/// The compiled-in table: one file per EC2 area (the list lives with the id registry, which
/// reads the compiled-in kinds from it).
pub use crate::ids::BUILTIN_MAPPINGS as BUILTIN;

#[derive(Debug, Clone)]
pub struct CommandInfo {
    pub name: String,
    /// Item key of a list command's answer (`virtualmachine`).
    pub items: Option<String>,
    pub is_async: bool,
    /// Async create: answers `id` + `jobid`.
    pub creates: bool,
    /// Object key of a sync answer or of an async job's result.
    pub result: Option<String>,
    pub at: At,
}

/// Known fields of a CloudStack object (for validating paths), and which fields nest objects.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub fields: Vec<String>,
    pub nested: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct ValueMap {
    pub entries: HashMap<String, String, NameHash>,
    pub default: Option<String>,
}

impl ValueMap {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.entries.get(k).or(self.default.as_ref()).map(String::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct KindSpec {
    pub kind: Kind,
    /// EC2 id prefix (`i`, `vol`, ...).
    pub prefix: String,
    /// How the kind is tagged, when it can be.
    pub tags: Option<KindTags>,
    /// CloudStack has no counterpart: the objects live in the gateway's store.
    pub store: bool,
    /// Some objects of this kind are records of this kind in the gateway's object store (the
    /// record's id is the EC2 id, its document the object as the kind's `list` answers it):
    /// snapshots of never-attached volumes (docs/gateway-state.md).
    pub store_records: Option<String>,
    /// Calls whose union lists every resource of this kind the caller may see.
    pub list: Vec<ListCall>,
    /// Path of the uuid in a listed item.
    pub id_path: Path,
    pub malformed_code: Code,
    pub malformed_msg: String,
    pub not_found_code: Code,
    pub not_found_one: String,
    pub not_found_many: String,
    pub at: At,
}

/// `tags = { cloudstack = "UserVm", also = ["ISO"], resource_type = "instance" }`.
#[derive(Debug, Clone)]
pub struct KindTags {
    /// CloudStack resource type for createTags / deleteTags.
    pub cloudstack: String,
    /// Other CloudStack resource types that mean this kind in listTags answers.
    pub also: Vec<String>,
    /// The EC2 `resource-type` name (DescribeTags).
    pub resource_type: String,
    /// Path of the owning account's name in a listed item: CloudStack lets only the owner tag
    /// it, so the gateway keeps other accounts' tags on it in its store, per account (images).
    pub owner: Option<Path>,
}

impl Table {
    /// The kind an EC2 id names (by its prefix), among the kinds this table declares.
    pub fn kind_of_id(&self, id: &str) -> Option<&KindSpec> {
        let prefix = id.split_once('-')?.0;
        self.kinds.values().find(|k| k.prefix == prefix)
    }

    /// The taggable kind behind a CloudStack resource type (case-insensitive, as CloudStack is).
    pub fn kind_of_cloudstack_type(&self, cs_type: &str) -> Option<(&KindSpec, &KindTags)> {
        self.kinds.values().find_map(|k| {
            let t = k.tags.as_ref().filter(|_| !k.store)?;
            (t.cloudstack.eq_ignore_ascii_case(cs_type) || t.also.iter().any(|a| a.eq_ignore_ascii_case(cs_type)))
                .then_some((k, t))
        })
    }
}

#[derive(Debug, Clone)]
pub struct ListCall {
    pub command: String,
    pub items: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ErrorRule {
    pub commands: Vec<String>,
    pub errorcode: Option<u16>,
    pub cserrorcode: Option<u32>,
    /// Also (or only) for failed async jobs.
    pub on_job: bool,
    pub on_api: bool,
    pub code: Code,
    pub message: String,
    pub at: At,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdsBackend {
    /// One list call, uuids comma-joined into the `as` parameter (`ids`).
    List,
    /// One call per id, uuid in the `as` parameter (`id`), run concurrently.
    Each,
    /// No parameter: the list is filtered by id after the call.
    Filter,
}

#[derive(Debug, Clone)]
pub struct IdsSpec {
    pub param: String,
    pub kind: Kind,
    pub backend: IdsBackend,
    pub cs_param: String,
    pub required: bool,
    /// Path of the uuid in a result item.
    pub path: Path,
    /// Wire name of the id list in EC2 messages (`instancesSet`).
    pub wire: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Sync,
    Async,
    AsyncCreate,
    AsyncWait,
}

#[derive(Debug, Clone)]
pub struct CallSpec {
    pub command: String,
    pub completion: Completion,
    pub items: Option<String>,
    pub result: Option<String>,
    pub cache: bool,
    /// The call is made only when this resolved CloudStack parameter has a value; without one
    /// there is nothing to do and the action answers as if it had succeeded.
    pub when: Option<String>,
    /// CloudStack errorcodes that mean "there is nothing" for this call: it answers an empty
    /// object instead of an error (sync calls only).
    pub empty_on: Vec<u16>,
    /// Requested ids the gateway's store holds (`[kind.X] store_records`) are removed from the
    /// store (with the tags kept for them) instead of being sent to CloudStack.
    pub store_delete: bool,
    /// Cached lists (by command) the call makes stale: this caller's copies are dropped after it
    /// succeeds (a deleted key pair is not found in a cached listSSHKeyPairs any more).
    pub forget: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum ParamSource {
    Const(String),
    /// One EC2 parameter (`Placement.AvailabilityZone`).
    One(String),
    /// An EC2 list (`SecurityGroup` -> `SecurityGroup.1`, ...).
    List(String),
    /// Structured members (`Tag.N.Key`) rendered as a CloudStack map (`tags[i].key`).
    Members {
        prefix: String,
        fields: Vec<(String, String)>,
    },
    /// No EC2 input: the resolver makes the value from the request.
    None,
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub cs_name: String,
    pub source: ParamSource,
    pub via: Vec<String>,
    pub default: Option<String>,
    pub join: String,
    /// Several values -> one CloudStack call per value (results united).
    pub fanout: bool,
    pub at: At,
}

#[derive(Debug, Clone)]
pub struct PageSpec {
    pub min: i64,
    pub max: i64,
}

#[derive(Debug, Clone)]
pub enum Returns {
    List { element: String, shape: String },
    Object { shape: String },
    True,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub at: At,
    pub doc: Option<String>,
    pub required: Vec<String>,
    pub exclusive: Vec<Vec<String>>,
    pub ids: Option<IdsSpec>,
    pub params: Vec<ParamSpec>,
    pub call: Option<CallSpec>,
    pub items_from: Option<String>,
    pub step: Option<String>,
    pub args: serde_json::Value,
    /// List the requested objects and refuse by their state before the call (`check`).
    pub check: Option<super::check::CheckSpec>,
    /// Answer with the checked object and these fields (`answer`).
    pub answer: Option<super::check::AnswerSpec>,
    pub after_list: Vec<String>,
    pub before_render: Vec<String>,
    pub filters: Option<FilterSet>,
    pub param_filters: Vec<(String, String)>,
    pub page: Option<PageSpec>,
    pub dedupe: Option<Path>,
    pub returns: Returns,
    pub uses: Vec<String>,
    /// SOAP element paths of this action whose Query names are irregular (`soap = { ... }`).
    pub soap: Vec<SoapPath>,
    /// Members the action's step reads besides what the declarations above read (`accepts`).
    pub accepts: Vec<String>,
    /// Members refused by name (`refuses`), checked before anything runs (docs/parameters.md).
    pub refuses: Vec<super::params::Refusal>,
}

/// One declared SOAP element path -> Query name (`"instancesSet/item/instanceId" = "InstanceId.#"`).
#[derive(Debug, Clone)]
pub struct SoapPath {
    pub path: String,
    pub query: String,
    pub at: At,
}

/// Actions that change nothing (`Describe*`, `Get*`, `List*`): the request timeout cuts them, and
/// a retry of them is always safe.
pub fn read_only_action(name: &str) -> bool {
    ["Describe", "Get", "List"].iter().any(|p| name.starts_with(p))
}

impl Action {
    pub fn read_only(&self) -> bool {
        read_only_action(&self.name)
    }

    /// The CloudStack commands behind this action (for `mappings list`).
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = &self.call {
            out.push(c.command.clone());
        }
        if let Some(c) = self.args.get("command").and_then(|v| v.as_str()) {
            out.push(c.to_string());
        }
        for u in &self.uses {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub enum FieldKind {
    Value(Expr),
    Nested { shape: String, from: Expr },
    List { from: Expr, shape: String },
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    /// Render even when there is no value (empty element / empty list).
    pub always: bool,
    /// Only for requests of this API version or later.
    pub since: Option<String>,
    /// Rendered only when this expression yields a value.
    pub when: Option<Expr>,
    pub at: At,
}

#[derive(Debug, Clone)]
pub struct Shape {
    pub name: String,
    pub source: Option<String>,
    pub fields: Vec<Field>,
    /// The item's first-level fields that the fields' paths read, sorted: the slots of the view
    /// `render::fields` reads them from (`Path::slot`; `Shape::index_reads`).
    pub reads: Vec<String>,
    pub at: At,
}

impl Shape {
    /// Fill `reads` from the fields' paths and give each path its slot in it.
    pub fn index_reads(&mut self) {
        let mut names = std::collections::BTreeSet::new();
        for p in self.fields.iter_mut().flat_map(Field::exprs_mut).flat_map(Expr::paths_mut) {
            if let Some(seg) = p.segs.first() {
                names.insert(seg.name.clone());
            }
        }
        self.reads = names.into_iter().collect();
        let reads = &self.reads;
        for p in self.fields.iter_mut().flat_map(Field::exprs_mut).flat_map(Expr::paths_mut) {
            p.slot =
                p.segs.first().and_then(|seg| reads.binary_search(&seg.name).ok()).and_then(|i| u16::try_from(i).ok());
        }
    }
}

impl Field {
    /// The expressions a field evaluates against the item: `when`, and its value or `from`.
    fn exprs_mut(&mut self) -> impl Iterator<Item = &mut Expr> {
        let main = match &mut self.kind {
            FieldKind::Value(e) | FieldKind::Nested { from: e, .. } | FieldKind::List { from: e, .. } => e,
        };
        self.when.as_mut().into_iter().chain(std::iter::once(main))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub actions: BTreeMap<String, Action>,
    pub shapes: HashMap<String, Shape, NameHash>,
    pub maps: HashMap<String, ValueMap, NameHash>,
    pub filter_sets: HashMap<String, FilterSet>,
    pub kinds: HashMap<Kind, KindSpec>,
    pub errors: Vec<ErrorRule>,
    pub commands: HashMap<String, CommandInfo>,
    pub objects: HashMap<String, ObjectInfo>,
    /// `[soap]`: SOAP element paths irregular for every action (`mappings/soap.toml`).
    pub soap_common: Vec<SoapPath>,
    /// Which files the table was read from.
    pub files: Vec<String>,
    /// The fields of its listed items each action reads (`project::item_fields`).
    pub item_fields: HashMap<String, crate::base::fields::Keep>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_loads() {
        let t = match Table::builtin() {
            Ok(t) => t,
            Err(errs) => panic!("{}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
        };
        assert!(t.actions.contains_key("RunInstances"));
        let inst = &t.shapes["Instance"];
        let names: Vec<&str> = inst.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(&names[..4], &["instanceId", "imageId", "instanceState", "privateDnsName"]);
    }
}
