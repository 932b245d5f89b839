"""The other side of the gateway's MESH mailbox in the tests: an LA or a hospital, driven by
NHS England's own mesh-client package. Prints one JSON document.

  party.py URL MAILBOX SHARED_KEY send TO FILE WORKFLOW [MAX_CHUNK_BYTES]
  party.py URL MAILBOX SHARED_KEY inbox OUT_DIR     (retrieves, saves and acknowledges all)
  party.py URL MAILBOX SHARED_KEY send-many TO DIR WORKFLOW [MAX_CHUNK_BYTES]  (every file in DIR)
  party.py URL MAILBOX SHARED_KEY count
  party.py URL MAILBOX SHARED_KEY report LINKED_MESSAGE_ID CODE DESCRIPTION
      (the sandbox's admin API puts a non-delivery report for the message in MAILBOX's inbox)

For TLS, CPIS_MESH_CA, CPIS_MESH_CERT and CPIS_MESH_KEY name the CA and the client pair.
"""
import json
import os
import sys

from mesh_client import MeshClient


def client(url, mailbox, key):
    ca = os.environ.get("CPIS_MESH_CA")
    cert = (os.environ["CPIS_MESH_CERT"], os.environ["CPIS_MESH_KEY"]) if ca else None
    return MeshClient(
        url,
        mailbox,
        "password",
        shared_key=key.encode(),
        verify=ca if ca else False,
        cert=cert,
        max_retries=0,
    )


def main():
    url, mailbox, key, command, *rest = sys.argv[1:]
    if command == "report":
        import requests

        linked, code, description = rest
        answer = requests.post(
            url + "/messageexchange/admin/report",
            json={
                "mailbox_id": mailbox,
                "code": code,
                "description": description,
                "workflow_id": "CPIS_ACK",
                "linked_message_id": linked,
            },
            verify=False,
            timeout=30,
        )
        answer.raise_for_status()
        print(json.dumps(answer.json()))
        return
    with client(url, mailbox, key) as mesh:
        mesh.handshake()
        if command == "send":
            to, path, workflow, *chunk = rest
            with open(path, "rb") as f:
                data = f.read()
            kwargs = {"max_chunk_size": int(chunk[0])} if chunk else {}
            message_id = mesh.send_message(
                to,
                data,
                workflow_id=workflow,
                file_name=os.path.basename(path),
                local_id="test-" + os.path.basename(path),
                subject="test",
                **kwargs,
            )
            print(json.dumps({"message_id": message_id}))
        elif command == "send-many":
            to, folder, workflow, *chunk = rest
            kwargs = {"max_chunk_size": int(chunk[0])} if chunk else {}
            sent = 0
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name), "rb") as f:
                    mesh.send_message(
                        to, f.read(), workflow_id=workflow, file_name=name, subject="bench", **kwargs
                    )
                sent += 1
            print(json.dumps({"sent": sent}))
        elif command == "inbox":
            (out_dir,) = rest
            got = []
            for message_id in mesh.list_messages():
                message = mesh.retrieve_message(message_id)
                name = message.mex_header("filename") or message_id
                body = message.read()
                with open(os.path.join(out_dir, name), "wb") as f:
                    f.write(body)
                got.append(
                    {
                        "message_id": message_id,
                        "from": message.mex_header("from"),
                        "workflow": message.mex_header("workflowid"),
                        "file_name": name,
                        "local_id": message.mex_header("localid"),
                        "bytes": len(body),
                    }
                )
                message.acknowledge()
            print(json.dumps(got))
        elif command == "count":
            print(json.dumps({"count": mesh.count_messages()}))
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
