"""Stand-ins for the vendors we cannot reach, faithful to their documented contracts
(``../shared/contracts``) and keeping their own books so tests count documents vendor-side:
the Shopify storefront, Amazon SP-API and Adobe Commerce fakes, and the warehouse and carrier
simulators that report back through the platform's webhooks.

Product code never imports them: ``retail dev``, ``retail demo`` and the tests start them."""
