//! Which channels get a service's incident updates (opened, acknowledged, resolved, notes),
//! as the config declares them; the store queues the updates in the transaction that made the
//! change (`tocsin_store::updates`), asking the [`Catalog`] through [`ServicePolicy`].

use std::collections::HashMap;

use tocsin_core::{ResolvePolicy, ServiceId};
use tocsin_store::updates::{ServicePolicy, UpdateChannel};

use crate::Catalog;

/// Service id to the channels that get its incident updates, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateChannels {
    pub by_service: HashMap<ServiceId, Vec<UpdateChannel>>,
}

impl UpdateChannels {
    pub fn channels_of(&self, service: &ServiceId) -> &[UpdateChannel] {
        self.by_service.get(service).map_or(&[], Vec::as_slice)
    }
}

impl ServicePolicy for Catalog {
    fn resolve_policy(&self, service: &ServiceId) -> ResolvePolicy {
        Catalog::resolve_policy(self, service)
    }

    fn update_channels(&self, service: &ServiceId) -> Vec<UpdateChannel> {
        self.update_channels_now().channels_of(service).to_vec()
    }

    fn ack_timeout(&self, service: &ServiceId) -> Option<std::time::Duration> {
        self.paging().ack_timeouts.get(service).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_answers_the_channels_of_the_config_it_holds() {
        let catalog = Catalog::default();
        let db = ServiceId::new("db");
        assert!(ServicePolicy::update_channels(&catalog, &db).is_empty());
        let chat = UpdateChannel {
            id: "db-chat".to_owned(),
            method: "slack".to_owned(),
        };
        catalog.replace_update_channels(UpdateChannels {
            by_service: HashMap::from([(db.clone(), vec![chat.clone()])]),
        });
        assert_eq!(ServicePolicy::update_channels(&catalog, &db), [chat]);
        assert!(ServicePolicy::update_channels(&catalog, &ServiceId::new("web")).is_empty());
    }
}
