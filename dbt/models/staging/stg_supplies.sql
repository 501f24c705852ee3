with

source as (

    select * from {{ source('jaffle_shop', 'raw_supplies') }}

),

renamed as (

    select

        ----------  ids
        {{ dbt.concat(["id", "'-'", "sku"]) }} as supply_uuid,
        id as supply_id,
        sku as product_id,

        ---------- text
        name as supply_name,

        ---------- numerics
        cost as supply_cost_cents,
        {{ cents_to_dollars('cost') }} as supply_cost,

        ---------- booleans
        perishable as is_perishable_supply

    from source

)

select * from renamed
