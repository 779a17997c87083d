"""Seed 003 (Kubeflow + TFJob): a training job reads its data and writes its model through
the S3 gateway, and Pachyderm sees the model as a new commit with a parent."""
from __future__ import annotations

import os

from pfs.model import Branch, Repo
from tests.s3gateway.conftest import boto3_client


def test_kubeflow_mnist_flow(pfs, gateway, tmp_path):
    inputrepo, outputrepo = Repo("default", "inputrepo"), Repo("default", "outputrepo")
    # pachctl create repo inputrepo / outputrepo; put file inputrepo@master:/data/mnist.npz
    pfs.create_repo(inputrepo)
    pfs.create_repo(outputrepo)
    mnist = os.urandom(3 * 1024 * 1024 + 17)
    pfs.put_bytes(inputrepo, "master", "/data/mnist.npz", mnist)
    # pachctl create branch outputrepo@master (so it is visible through the gateway)
    pfs.create_branch(Branch(outputrepo, "master"))
    first_out = pfs.inspect_branch(Branch(outputrepo, "master")).head

    # --- the job (tfjob.py): copy the training data out, train, copy the model back ---
    s3 = boto3_client(gateway.endpoint_url)
    try:
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert {"master.inputrepo.default", "master.outputrepo.default"} <= names
        local = tmp_path / "mnist.npz"
        s3.download_file("master.inputrepo", "data/mnist.npz", str(local))
        assert local.read_bytes() == mnist
        model = tmp_path / "my_model.h5"
        model.write_bytes(b"HDF5-model-" + mnist[:4096])
        s3.upload_file(str(model), "master.outputrepo", "my_model.h5")
    finally:
        s3.close()

    # --- pachctl list file outputrepo@master / list commit outputrepo@master ---
    head = pfs.commit_for_read(outputrepo, "", "master")
    files = [f.path for f in pfs.list_file(head, "/")]
    assert files == ["/my_model.h5"]
    _, it = pfs.read_file(head, "/my_model.h5")
    assert b"".join(it) == model.read_bytes()
    commits = pfs.list_commits(outputrepo)
    assert commits[0].commit.id == head.commit.id
    assert head.parent == first_out and head.finished is not None
    # the input repo is untouched by the job
    assert len(pfs.list_commits(inputrepo)) == 1


def test_retraining_adds_commits_with_parents(pfs, gateway):
    """Step 6 of the seed: new input data, the job runs again, the model gets a new commit."""
    inputrepo, outputrepo = Repo("default", "inputrepo"), Repo("default", "outputrepo")
    pfs.create_repo(inputrepo)
    pfs.create_repo(outputrepo)
    pfs.create_branch(Branch(outputrepo, "master"))
    s3 = boto3_client(gateway.endpoint_url)
    try:
        for round_ in range(2):
            pfs.put_bytes(inputrepo, "master", "/data/mnist.npz", b"round %d" % round_)
            data = s3.get_object(Bucket="master.inputrepo", Key="data/mnist.npz")["Body"].read()
            s3.put_object(Bucket="master.outputrepo", Key="my_model.h5", Body=b"model of " + data)
    finally:
        s3.close()
    outs = pfs.list_commits(outputrepo)
    assert len(outs) == 3  # the empty branch commit, then one per training run
    assert outs[0].parent == outs[1].commit.id and outs[1].parent == outs[2].commit.id
    ins = pfs.list_commits(inputrepo)
    assert ins[0].parent == ins[1].commit.id
