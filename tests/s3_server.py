"""A real S3 API on loopback for the tests: moto's server mode (ThreadedMotoServer) on
127.0.0.1, with an IAM user whose keys the tests put in the environment, the standard place
pyarrow's S3 filesystem (and every Ray worker started from the test) reads them from.

Authentication is switched on, so wrong or missing credentials are refused as a real store
would. The instance metadata service is disabled: nothing is asked of any other host.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

ALLOW_ALL = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'


@dataclass
class S3Server:
    endpoint: str
    env: dict  # what a client needs: endpoint, region, the user's keys

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@contextmanager
def s3_server(*buckets: str) -> Iterator[S3Server]:
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    admin = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="admin", aws_secret_access_key="admin")
    try:
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="quasar")
        key = iam.create_access_key(UserName="quasar")["AccessKey"]
        policy = iam.create_policy(PolicyName="all", PolicyDocument=ALLOW_ALL)["Policy"]["Arn"]
        iam.attach_user_policy(UserName="quasar", PolicyArn=policy)
        for bucket in buckets:
            boto3.client("s3", **admin).create_bucket(Bucket=bucket)
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)  # from now on, keys are checked
        yield S3Server(endpoint, {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                                  "AWS_EC2_METADATA_DISABLED": "true",
                                  "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
    finally:
        server.stop()
