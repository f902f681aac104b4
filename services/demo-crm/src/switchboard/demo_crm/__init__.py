"""A reference back office for the demo: answers ``sb.crm.*`` from a data file and reads
every call's events through a durable consumer, as a CRM integration does."""

__version__ = "0.1.0"
