-- The demo shop's schema, exactly as its data contracts (lakehouse/contracts/oltp/*.yml)
-- describe it: same columns, types, primary keys; the contracts' min/max/accepted_values
-- as CHECK constraints. tests/oltp/test_cluster.py keeps the two from drifting.
--
-- REPLICA IDENTITY FULL on every table: updates and deletes then carry the whole previous
-- row in the WAL, so Debezium's `before` is complete (docs/change-events.md).

create table transporter (
    transporter_id bigint not null,
    name text not null,
    service_level text not null
        constraint transporter_service_level_accepted
        check (service_level in ('economy', 'standard', 'express')),
    cost_per_order numeric(8, 2) not null
        constraint transporter_cost_per_order_min check (cost_per_order >= 0),
    updated_at timestamptz not null,
    constraint transporter_pkey primary key (transporter_id)
);

create table client (
    client_id bigint not null,
    first_name text,
    last_name text,
    email text,
    phone text,
    city text,
    region text not null,
    segment text not null
        constraint client_segment_accepted
        check (segment in ('bargain', 'family', 'premium', 'professional')),
    created_at timestamp not null,
    updated_at timestamptz not null,
    constraint client_pkey primary key (client_id)
);

create table product (
    product_id bigint not null,
    sku text not null,
    name text not null,
    description text,
    category text not null,
    brand text not null,
    price numeric(10, 2) not null constraint product_price_min check (price >= 0),
    is_active boolean not null,
    created_at timestamp not null,
    updated_at timestamptz not null,
    constraint product_pkey primary key (product_id)
);

create table promotion (
    promotion_id bigint not null,
    name text not null,
    category text not null,
    discount_pct numeric(5, 2) not null
        constraint promotion_discount_pct_range check (discount_pct >= 0 and discount_pct <= 100),
    starts_on date not null,
    ends_on date not null,
    updated_at timestamptz not null,
    constraint promotion_pkey primary key (promotion_id)
);

create table orders (
    order_id bigint not null,
    client_id bigint not null,
    transporter_id bigint not null,
    status text not null
        constraint orders_status_accepted
        check (status in ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    ordered_at timestamp not null,
    shipped_at timestamp,
    delivered_at timestamp,
    cancelled_at timestamp,
    updated_at timestamptz not null,
    constraint orders_pkey primary key (order_id),
    constraint orders_client_fkey foreign key (client_id) references client (client_id),
    constraint orders_transporter_fkey
        foreign key (transporter_id) references transporter (transporter_id)
);

create table order_item (
    order_item_id bigint not null,
    order_id bigint not null,
    product_id bigint not null,
    promotion_id bigint,
    quantity integer not null constraint order_item_quantity_min check (quantity >= 1),
    unit_price numeric(10, 2) not null constraint order_item_unit_price_min check (unit_price >= 0),
    discount_pct numeric(5, 2) not null
        constraint order_item_discount_pct_range check (discount_pct >= 0 and discount_pct <= 100),
    discount_amount numeric(12, 2) not null
        constraint order_item_discount_amount_min check (discount_amount >= 0),
    updated_at timestamptz not null,
    constraint order_item_pkey primary key (order_item_id),
    constraint order_item_order_fkey foreign key (order_id) references orders (order_id),
    constraint order_item_product_fkey foreign key (product_id) references product (product_id),
    constraint order_item_promotion_fkey
        foreign key (promotion_id) references promotion (promotion_id)
);

create table sale (
    sale_id bigint not null,
    order_id bigint not null,
    client_id bigint not null,
    sold_at timestamp not null,
    gross_amount numeric(12, 2) not null constraint sale_gross_amount_min check (gross_amount >= 0),
    discount_amount numeric(12, 2) not null
        constraint sale_discount_amount_min check (discount_amount >= 0),
    net_amount numeric(12, 2) not null constraint sale_net_amount_min check (net_amount >= 0),
    payment_method text not null
        constraint sale_payment_method_accepted
        check (payment_method in ('card', 'transfer', 'paypal', 'cash')),
    updated_at timestamptz not null,
    constraint sale_pkey primary key (sale_id),
    constraint sale_order_fkey foreign key (order_id) references orders (order_id),
    constraint sale_client_fkey foreign key (client_id) references client (client_id)
);

create table stock (
    product_id bigint not null,
    warehouse_id text not null,
    quantity_on_hand integer not null
        constraint stock_quantity_on_hand_min check (quantity_on_hand >= 0),
    reorder_point integer not null constraint stock_reorder_point_min check (reorder_point >= 0),
    updated_at timestamptz not null,
    constraint stock_pkey primary key (product_id, warehouse_id),
    constraint stock_product_fkey foreign key (product_id) references product (product_id)
);

-- foreign keys are checked from the referencing side on every parent delete: index them
create index orders_client_id_idx on orders (client_id);
create index order_item_order_id_idx on order_item (order_id);
create index order_item_product_id_idx on order_item (product_id);
create index sale_order_id_idx on sale (order_id);
create index sale_client_id_idx on sale (client_id);

alter table transporter replica identity full;
alter table client replica identity full;
alter table product replica identity full;
alter table promotion replica identity full;
alter table orders replica identity full;
alter table order_item replica identity full;
alter table sale replica identity full;
alter table stock replica identity full;
