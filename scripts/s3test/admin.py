#!/usr/bin/env python3
"""What the object-store tests ask of the test server, through a client
independent of pgsnap's (boto3, which moto installs), so that the tests check
pgsnap's requests against someone else's view of the store.

    admin.py create-bucket BUCKET
    admin.py exists BUCKET KEY           prints yes or no
    admin.py etag BUCKET KEY             prints the object's ETag
    admin.py uploads BUCKET              prints the keys of incomplete multipart uploads, one a line
    admin.py abort-uploads BUCKET        aborts every incomplete upload
    admin.py put BUCKET KEY FILE         PutObject from FILE
    admin.py get BUCKET KEY FILE         GetObject into FILE
    admin.py fault PROXY JSON            adds a fault rule to the proxy at PROXY
    admin.py faults PROXY                prints the proxy's log, "METHOD PATH<TAB>action" a line
    admin.py clear-faults PROXY          removes the proxy's rules and log

The store and credentials come from PGSNAP_TEST_S3_ENDPOINT,
PGSNAP_TEST_S3_ACCESS_KEY_ID and PGSNAP_TEST_S3_SECRET_ACCESS_KEY.
"""
import json
import os
import sys
import urllib.request


def client():
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3", endpoint_url=os.environ["PGSNAP_TEST_S3_ENDPOINT"], region_name="us-east-1",
        aws_access_key_id=os.environ["PGSNAP_TEST_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["PGSNAP_TEST_S3_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def control(proxy, method, body=None):
    request = urllib.request.Request(proxy + "/__fault", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def main(command, *args):
    if command == "create-bucket":
        client().create_bucket(Bucket=args[0])
    elif command == "exists":
        from botocore.exceptions import ClientError
        try:
            client().head_object(Bucket=args[0], Key=args[1])
            print("yes")
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
            print("no")
    elif command == "etag":
        print(client().head_object(Bucket=args[0], Key=args[1])["ETag"])
    elif command == "uploads":
        for upload in client().list_multipart_uploads(Bucket=args[0]).get("Uploads", []):
            print(upload["Key"])
    elif command == "abort-uploads":
        s3 = client()
        for upload in s3.list_multipart_uploads(Bucket=args[0]).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=args[0], Key=upload["Key"], UploadId=upload["UploadId"])
    elif command == "put":
        with open(args[2], "rb") as f:
            client().put_object(Bucket=args[0], Key=args[1], Body=f.read())
    elif command == "get":
        with open(args[2], "wb") as f:
            f.write(client().get_object(Bucket=args[0], Key=args[1])["Body"].read())
    elif command == "fault":
        control(args[0], "POST", args[1].encode())
    elif command == "faults":
        for line, action in control(args[0], "GET")["log"]:
            print(f"{line}\t{action or ''}")
    elif command == "clear-faults":
        control(args[0], "DELETE")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:])
