"""Fixtures shared by the VPC-era suites in this folder."""
import pytest

from harness import default_vpc, supported_platforms


@pytest.fixture(scope="module")
def vpc_ec2(boto3_client):
    """A boto3 EC2 client of the test user; the module is skipped when the simulator's region
    has no VPC zone (an Advanced zone without security groups)."""
    c = boto3_client()
    if "VPC" not in supported_platforms(c.describe_account_attributes):
        pytest.skip("the simulator's region has no VPC zone (Advanced without security groups)")
    return c


@pytest.fixture(scope="module")
def vpc_ec2_no_default(vpc_ec2):
    """vpc_ec2, skipping when the user has a default VPC (Domain=vpc addresses and 'the newest
    VPC' would land there)."""
    if default_vpc(vpc_ec2.describe_account_attributes) != "none":
        pytest.skip("this user has a default VPC; Domain=vpc addresses would be allocated there")
    return vpc_ec2
