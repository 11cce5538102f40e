"""Object lookups that respect ownership: what you may not see does not exist for you."""

from __future__ import annotations

from gateway.api import context
from gateway.auth.roles import sees_all_datasets
from gateway.db.models import Dataset, Item
from gateway.errors import NotFound


def visible_dataset(dataset_id: str) -> Dataset:
    context.note(object_id=dataset_id, dataset_id=dataset_id)
    ds = context.session().get(Dataset, dataset_id)
    if ds is None:
        raise NotFound("no such dataset", reason="not_found")
    ident = context.identity()
    if not sees_all_datasets(ident.role) and ds.owner_id != ident.principal_id:
        raise NotFound("no such dataset", reason="not_visible")
    return ds


def visible_item(item_id: str) -> Item:
    context.note(object_id=item_id)
    item = context.session().get(Item, item_id)
    if item is None:
        raise NotFound("no such item", reason="not_found")
    context.note(dataset_id=item.dataset_id)
    visible_dataset_of(item)
    return item


def visible_dataset_of(item: Item) -> Dataset:
    ds = context.session().get(Dataset, item.dataset_id)
    ident = context.identity()
    if ds is None or (not sees_all_datasets(ident.role) and ds.owner_id != ident.principal_id):
        raise NotFound("no such item", reason="not_visible")
    return ds
