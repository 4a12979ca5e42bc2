"""Migration 49: local services booking (cloud/services/bookings.py) - each store's service book, the bookings, and
the grid cells a booking holds for its staff member (the primary key is what forbids a double booking)."""
from __future__ import annotations

MIGRATION_49 = (49, "local services booking: service books, bookings, the staff cells they hold", """
    create table if not exists service_books (
        store_id    text primary key,
        book        jsonb not null,                 -- protocol/service_slots.py ServiceBook, as checked
        version     int not null,                   -- 1, 2, ...: each PUT that changes the book
        updated_ms  bigint not null,
        updated_by  text not null
    );
    create table if not exists service_bookings (
        booking_id    text primary key,             -- made by the customer's client: a retry is the same booking
        store_id      text not null,
        service_id    text not null,
        service_name  text not null,                -- as the book named it when booked
        service_name_en text not null,
        staff_id      text not null,
        member_id     text not null,
        start_ms      bigint not null,
        end_ms        bigint not null,
        price_fen     bigint not null,              -- paid at the store when the service is given
        status        text not null default 'booked',  -- booked | cancelled
        created_ms    bigint not null,
        cancelled_ms  bigint,
        cancelled_by  text                          -- 'member' or an operator's username
    );
    create index if not exists service_bookings_member on service_bookings (member_id, start_ms desc);
    create index if not exists service_bookings_store_day on service_bookings (store_id, start_ms);
    create table if not exists service_cells (
        store_id    text not null,
        staff_id    text not null,
        cell_ms     bigint not null,                -- a 15-minute cell's start (protocol/service_slots.py GRID_MIN)
        booking_id  text not null references service_bookings (booking_id),
        primary key (store_id, staff_id, cell_ms)   -- one booking per staff member per cell: no double booking
    );
    create index if not exists service_cells_booking on service_cells (booking_id);
""")
