with

orders as (

    select * from {{ ref('stg_orders') }}

),

order_items as (

    select * from {{ ref('order_items') }}

),

order_items_summary as (

    -- money is summed in integer cents (exact on every warehouse), then shown in dollars
    select
        order_id,

        sum(supply_cost_cents) as order_cost_cents,
        sum(product_price_cents) as order_items_subtotal_cents,
        count(order_item_id) as count_order_items,
        sum(
            case
                when is_food_item then 1
                else 0
            end
        ) as count_food_items,
        sum(
            case
                when is_drink_item then 1
                else 0
            end
        ) as count_drink_items

    from order_items

    group by 1

),

compute_booleans as (

    -- a left join keeps every order: one without items shows zero counts
    -- (and fails the order_items_subtotal = subtotal test unless its subtotal is 0)
    select
        orders.*,

        {{ cents_to_dollars('coalesce(order_items_summary.order_cost_cents, 0)') }} as order_cost,
        {{ cents_to_dollars('coalesce(order_items_summary.order_items_subtotal_cents, 0)') }}
            as order_items_subtotal,
        cast(coalesce(order_items_summary.count_food_items, 0) as {{ dbt.type_bigint() }})
            as count_food_items,
        cast(coalesce(order_items_summary.count_drink_items, 0) as {{ dbt.type_bigint() }})
            as count_drink_items,
        cast(coalesce(order_items_summary.count_order_items, 0) as {{ dbt.type_bigint() }})
            as count_order_items,
        coalesce(order_items_summary.count_food_items, 0) > 0 as is_food_order,
        coalesce(order_items_summary.count_drink_items, 0) > 0 as is_drink_order

    from orders

    left join order_items_summary
        on orders.order_id = order_items_summary.order_id

),

customer_order_count as (

    select
        *,

        row_number() over (
            partition by customer_id
            order by ordered_at asc, order_id asc
        ) as customer_order_number

    from compute_booleans

)

select * from customer_order_count
