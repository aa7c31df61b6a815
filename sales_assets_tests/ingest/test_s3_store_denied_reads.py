"""S3ObjectStore.read_versioned when S3 answers 403 instead of 404.

Risk guarded: S3 answers a GET of a missing key with 403 AccessDenied unless the caller may
list the bucket for that name, and the stack's roles may list only their own prefixes (an
``s3:prefix`` condition, which a GET does not carry). A lease released between another run's
failed conditional create and its read would then fail that run with an access error instead
of letting it take the free key; a real denial must still fail loudly, never read as absent.
"""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sales_assets.ingest.lease import Lease
from sales_assets.ingest.store import S3ObjectStore

KEY = "curated/_leases/order_date=2026-11-20.json"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        yield client


def deny_gets(client, keys_denied=None):
    """GETs answer as S3 does for a role without list permission on the key's name: 403 for
    a missing key (and, with ``keys_denied``, for those existing keys too)."""
    real_get = client.get_object

    def get_object(**params):
        try:
            if keys_denied and params["Key"] in keys_denied:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
            return real_get(**params)
        except client.exceptions.NoSuchKey:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject") from None

    client.get_object = get_object


def test_a_missing_key_answered_with_403_reads_as_absent(s3):
    store = S3ObjectStore(s3, "lake", "prod")
    deny_gets(s3)
    assert store.read_versioned(KEY) is None
    assert store.create_exclusive(KEY, b"one")
    assert store.read_versioned(KEY).data == b"one"


def test_a_denied_read_of_an_existing_key_still_fails(s3):
    store = S3ObjectStore(s3, "lake", "prod")
    assert store.create_exclusive(KEY, b"one")
    deny_gets(s3, keys_denied={f"prod/{KEY}"})
    with pytest.raises(ClientError, match="AccessDenied"):
        store.read_versioned(KEY)


def test_a_lease_released_between_the_refused_create_and_the_read_is_taken(s3):
    store = S3ObjectStore(s3, "lake", "prod")
    deny_gets(s3)
    holder = Lease(store, KEY, "order_date=2026-11-20", "holder").acquire()
    real_create = store.create_exclusive
    calls = []

    def create_then_holder_releases(key, data):
        calls.append(key)
        created = real_create(key, data)
        if not created and len(calls) == 1:
            holder.release()  # the holder commits and lets go right after our refused create
        return created

    store.create_exclusive = create_then_holder_releases
    taker = Lease(store, KEY, "order_date=2026-11-20", "taker").acquire()
    assert len(calls) == 2 and taker.took_over is None
    assert b'"run_id": "taker"' in store.read_versioned(KEY).data
