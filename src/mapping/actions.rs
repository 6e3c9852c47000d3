//! Every EC2 action name (the 2013-10-01 WSDL operations plus the 2016-11-15 API model), so that a
//! real EC2 action the gateway does not map is told apart from a made-up one.

const NAMES: &str = include_str!("ec2_actions.txt");

pub fn is_ec2_action(name: &str) -> bool {
    NAMES.lines().any(|l| l == name)
}

pub fn all() -> impl Iterator<Item = &'static str> {
    NAMES.lines().filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_names() {
        assert!(super::is_ec2_action("RunInstances"));
        assert!(super::is_ec2_action("DescribeInstanceTypes"));
        assert!(super::is_ec2_action("DescribeLicenses"));
        assert!(!super::is_ec2_action("FooBar"));
        assert!(!super::is_ec2_action(""));
        assert!(super::all().count() > 800);
    }
}
