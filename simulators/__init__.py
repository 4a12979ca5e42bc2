"""Virtual devices, shoppers, online customers and a fleet launcher; also home of the `freshmesh` CLI."""
