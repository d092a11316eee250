"""Opening the store the settings name: SQLite in the state directory unless `[store] url`
names a PostgreSQL database (then roost.store.postgres, which needs the roost[postgres] extra)."""

from __future__ import annotations

from roost.config.settings import Settings
from roost.store.interface import StateStore
from roost.store.sqlite import Store, StoreError


def open_store(settings: Settings) -> StateStore:
    url = settings.store.url
    if url is None:
        return Store.open(settings.daemon.state_dir)
    try:
        from roost.store.postgres import PgStore
    except ImportError:
        raise StoreError(
            "store.url names PostgreSQL, which needs psycopg: pip install 'roost[postgres]'"
        ) from None
    password = settings.store.password
    return PgStore(
        url,
        password=password.get_secret_value() if password else None,
        max_size=settings.store.pool_size,
    )
