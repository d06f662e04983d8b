"""The platform's database: schema, engines and the PlatformStore queries."""
