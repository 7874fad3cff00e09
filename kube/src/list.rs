//! Every object of the model's kinds, read once (`kubectl mesh analyze` on a cluster).
//!
//! The whole cluster is read whatever namespace is asked for: a route's Gateway, a
//! ReferenceGrant or a backend often lives in another namespace, and a check that cannot see
//! them would report them missing. Which findings are shown is the caller's choice.

use futures_util::future::join_all;
use kube::api::{Api, DynamicObject, ListParams};
use mesh_model::kind::{KindInfo, KINDS};
use mesh_model::{Kind, Object};

use crate::resource::{api_resource, to_object, Values};

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot list {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// What was read: the objects, and the kinds the API server serves (complete in `objects`).
pub struct Listed {
    pub objects: Vec<Object>,
    pub served: Vec<Kind>,
}

/// One kind: its objects at the newest served version, or None when it is not served.
async fn list_kind(
    client: &kube::Client,
    info: &'static KindInfo,
    values: Values,
) -> Result<Option<Vec<Object>>, ListError> {
    for version in info.served {
        let ar = api_resource(info, version);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let mut out = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = match api.list(&params).await {
                Ok(p) => p,
                // Not served at this version (or the CRD is not installed): the next version.
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(source) => {
                    return Err(ListError::List {
                        kind: info.name,
                        source,
                    })
                }
            };
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            out.extend(
                page.items
                    .into_iter()
                    .filter_map(|o| to_object(&ar, info.kind, o, values)),
            );
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(Some(out)),
            }
        }
    }
    Ok(None)
}

/// Every object of every kind of the model, each kind listed at once (pages of 500).
pub async fn all(client: &kube::Client, values: Values) -> Result<Listed, ListError> {
    let lists = join_all(KINDS.iter().map(|info| list_kind(client, info, values))).await;
    let mut listed = Listed {
        objects: Vec::new(),
        served: Vec::new(),
    };
    for (info, list) in KINDS.iter().zip(lists) {
        if let Some(objects) = list? {
            listed.served.push(info.kind);
            listed.objects.extend(objects);
        }
    }
    Ok(listed)
}
